//! The one service harness of the tests: a [`TwoFactorService`] on memory stores (the default)
//! or on any stores, with a manual clock, recording doubles for mail, texts and events, a
//! password check that counts its calls, and helpers that act as a user would.
//!
//! - [`Harness::new`], [`Harness::with_policy`], [`Harness::with`]: memory stores, whose typed
//!   handles stay in `otp` and `enrollments` (for `dump`, `backup_code_records`, …).
//! - [`Harness::on`], [`Harness::on_stores`]: any stores (a server-backed run).
//! - [`Harness::twin`], [`Harness::twin_on`], [`Harness::rekeyed`]: a second service instance
//!   (another app server) with the same keys and clock, on the same or other stores, or with a
//!   rotated keyring.
//! - [`Harness::builder`], [`HarnessBuilder::on`], [`Harness::like`]: everything else (a
//!   policy, a keyring, a clock, and a hook that adjusts the service's builder last, e.g. to
//!   wrap the stores or put a real mailer in).
// The any-store helpers serve the server-backed suites and `store_flows` (feature `test-util`).
#![cfg_attr(
    not(all(feature = "test-util", any(feature = "redis", feature = "postgres"))),
    allow(dead_code)
)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use twofactor::{
    clock::Clock, clock::Timestamp, service::ServiceBuilder, store::EnrollmentStore,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, testing::ManualClock,
    testing::RecordingEvents, testing::RecordingMailer, testing::RecordingNotices,
    testing::RecordingTextSender, totp::totp_code, totp::TotpParams, totp::TotpSecret, Challenge,
    Error, Keyring, LoginContext, LoginStep, Policy, TwoFactorService,
};

use super::every_store::Stores;
use super::{code_in, PASSWORD, START};

/// A service with its clock, keys, recording doubles and the stores underneath it.
pub(crate) struct Harness<O: ?Sized = MemoryOtpStore, E: ?Sized = MemoryEnrollmentStore> {
    pub(crate) tf: TwoFactorService,
    pub(crate) clock: ManualClock,
    pub(crate) keys: Keyring,
    pub(crate) policy: Policy,
    pub(crate) mailer: RecordingMailer,
    pub(crate) texts: RecordingTextSender,
    /// Notices to the account's own contact.
    pub(crate) notices: RecordingNotices,
    pub(crate) events: RecordingEvents,
    /// The one-time store under the service (beneath any wrapper a builder hook put on it).
    pub(crate) otp: Arc<O>,
    /// The enrolment store under the service (beneath any wrapper a builder hook put on it).
    pub(crate) enrollments: Arc<E>,
    /// Passwords the service has had checked (by the harness's own verifier).
    pub(crate) password_checks: Arc<AtomicU64>,
}

/// A harness on any stores.
pub(crate) type AnyHarness = Harness<dyn OtpStore, dyn EnrollmentStore>;

/// The recording doubles of a harness; twins share them, as the instances of one deployment
/// share its mail system and its log.
#[derive(Clone)]
pub(crate) struct Doubles {
    pub(crate) mailer: RecordingMailer,
    pub(crate) texts: RecordingTextSender,
    pub(crate) notices: RecordingNotices,
    pub(crate) events: RecordingEvents,
    pub(crate) password_checks: Arc<AtomicU64>,
}

impl Doubles {
    fn new() -> Self {
        Doubles {
            mailer: RecordingMailer::new(),
            texts: RecordingTextSender::new(),
            notices: RecordingNotices::new(),
            events: RecordingEvents::new(),
            password_checks: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// What a builder hook sees: the stores and the doubles the harness wired in.
pub(crate) struct Wiring<O: ?Sized, E: ?Sized> {
    pub(crate) otp: Arc<O>,
    pub(crate) enrollments: Arc<E>,
    pub(crate) doubles: Doubles,
}

type Hook<O, E> = Box<dyn FnOnce(ServiceBuilder, &Wiring<O, E>) -> ServiceBuilder>;

/// Builds a [`Harness`]: issuer `Acme`, the stores, the recording doubles, the clock, the policy
/// and a password check that accepts [`PASSWORD`]; then the hooks, in order.
pub(crate) struct HarnessBuilder<O: ?Sized, E: ?Sized> {
    otp: Arc<O>,
    enrollments: Arc<E>,
    policy: Policy,
    keys: Keyring,
    clock: ManualClock,
    doubles: Doubles,
    hooks: Vec<Hook<O, E>>,
    /// Whether the service gets the recording account-notices hook.
    account_notices: bool,
}

impl<O: OtpStore + ?Sized, E: EnrollmentStore + ?Sized> HarnessBuilder<O, E> {
    /// A harness on `otp` and `enrollments` with the default policy, a fresh keyring and a
    /// manual clock at [`START`].
    pub(crate) fn on(otp: Arc<O>, enrollments: Arc<E>) -> Self {
        HarnessBuilder {
            otp,
            enrollments,
            policy: Policy::default(),
            keys: Keyring::generate(),
            clock: ManualClock::new(Timestamp::from_unix_secs(START)),
            doubles: Doubles::new(),
            hooks: Vec::new(),
            account_notices: true,
        }
    }

    /// A service without the account-notices hook (a user with neither email nor phone factor
    /// then has no notice channel).
    pub(crate) fn without_account_notices(mut self) -> Self {
        self.account_notices = false;
        self
    }

    pub(crate) fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn keys(mut self, keys: Keyring) -> Self {
        self.keys = keys;
        self
    }

    pub(crate) fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = clock;
        self
    }

    /// Adjusts the service's builder after the harness's own settings, so it may replace any
    /// of them (a store wrapper, a real mailer, another password check).
    pub(crate) fn service(
        mut self,
        hook: impl FnOnce(ServiceBuilder, &Wiring<O, E>) -> ServiceBuilder + 'static,
    ) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    pub(crate) fn build(self) -> Harness<O, E> {
        let HarnessBuilder {
            otp,
            enrollments,
            policy,
            keys,
            clock,
            doubles,
            hooks,
            account_notices,
        } = self;
        let checks = doubles.password_checks.clone();
        let mut builder = TwoFactorService::builder()
            .issuer("Acme")
            .keys(keys.clone())
            .otp_store(otp.clone())
            .enrollments(enrollments.clone())
            .mailer(doubles.mailer.clone())
            .text_sender(doubles.texts.clone())
            .clock(clock.clone())
            .policy(policy.clone())
            .events(doubles.events.clone())
            .password_verifier(move |_user: &str, password: &str| {
                checks.fetch_add(1, Ordering::SeqCst);
                password == PASSWORD
            });
        if account_notices {
            builder = builder.account_notices(doubles.notices.clone());
        }
        let wiring = Wiring {
            otp,
            enrollments,
            doubles,
        };
        for hook in hooks {
            builder = hook(builder, &wiring);
        }
        let tf = builder.build().unwrap();
        let Wiring {
            otp,
            enrollments,
            doubles,
        } = wiring;
        Harness {
            tf,
            clock,
            keys,
            policy,
            mailer: doubles.mailer,
            texts: doubles.texts,
            notices: doubles.notices,
            events: doubles.events,
            otp,
            enrollments,
            password_checks: doubles.password_checks,
        }
    }
}

impl Harness {
    /// A harness on fresh memory stores.
    pub(crate) fn new() -> Self {
        Self::builder().build()
    }

    pub(crate) fn with_policy(policy: Policy) -> Self {
        Self::builder().policy(policy).build()
    }

    pub(crate) fn with(policy: Policy, keys: Keyring) -> Self {
        Self::builder().policy(policy).keys(keys).build()
    }

    /// A harness whose service checks passwords with `verifier` (its `password_checks` stays 0).
    pub(crate) fn with_password_verifier(
        verifier: impl twofactor::service::PasswordVerifier,
    ) -> Self {
        Self::builder()
            .service(move |b, _| b.password_verifier(verifier))
            .build()
    }

    /// The builder of a harness on fresh memory stores.
    pub(crate) fn builder() -> HarnessBuilder<MemoryOtpStore, MemoryEnrollmentStore> {
        HarnessBuilder::on(
            Arc::new(MemoryOtpStore::new()),
            Arc::new(MemoryEnrollmentStore::new()),
        )
    }
}

impl AnyHarness {
    /// A harness on the stores of one store setup (see [`every_store!`](super::every_store)).
    pub(crate) fn on_stores(stores: &Stores) -> Self {
        Self::builder_on(stores).build()
    }

    /// The builder of a harness on the stores of one store setup.
    pub(crate) fn builder_on(stores: &Stores) -> HarnessBuilder<dyn OtpStore, dyn EnrollmentStore> {
        HarnessBuilder::on(stores.0.clone(), stores.1.clone())
    }
}

impl<O: OtpStore + ?Sized, E: EnrollmentStore + ?Sized> Harness<O, E> {
    /// A harness on `otp` and `enrollments` (see [`HarnessBuilder::on`]).
    pub(crate) fn on(otp: Arc<O>, enrollments: Arc<E>) -> Self {
        HarnessBuilder::on(otp, enrollments).build()
    }

    /// The builder of another instance on the same stores, keys, clock, policy and doubles.
    pub(crate) fn like(&self) -> HarnessBuilder<O, E> {
        self.like_on(self.otp.clone(), self.enrollments.clone())
    }

    /// The builder of another instance with the same keys, clock, policy and doubles on the
    /// given stores.
    pub(crate) fn like_on<O2: OtpStore + ?Sized, E2: EnrollmentStore + ?Sized>(
        &self,
        otp: Arc<O2>,
        enrollments: Arc<E2>,
    ) -> HarnessBuilder<O2, E2> {
        HarnessBuilder {
            doubles: Doubles {
                mailer: self.mailer.clone(),
                texts: self.texts.clone(),
                notices: self.notices.clone(),
                events: self.events.clone(),
                password_checks: self.password_checks.clone(),
            },
            ..HarnessBuilder::on(otp, enrollments)
                .policy(self.policy.clone())
                .keys(self.keys.clone())
                .clock(self.clock.clone())
        }
    }

    /// Another instance on the same stores, keys and clock (a second app server).
    pub(crate) fn twin(&self) -> Self {
        self.like().build()
    }

    /// Another instance with the same keys and clock on other store handles.
    pub(crate) fn twin_on<O2: OtpStore + ?Sized, E2: EnrollmentStore + ?Sized>(
        &self,
        otp: Arc<O2>,
        enrollments: Arc<E2>,
    ) -> Harness<O2, E2> {
        self.like_on(otp, enrollments).build()
    }

    /// Another instance on the same stores and clock whose keyring is `keys` (a rotation).
    pub(crate) fn rekeyed(&self, keys: Keyring) -> Self {
        self.like().keys(keys).build()
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now().as_unix_secs()
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The current TOTP code for a base32 secret.
    pub(crate) fn totp(&self, secret_b32: &str) -> String {
        self.totp_at(secret_b32, self.now())
    }

    pub(crate) fn totp_at(&self, secret_b32: &str, time: u64) -> String {
        let secret = TotpSecret::from_base32(secret_b32).unwrap();
        totp_code(secret.as_bytes(), TotpParams::default(), time)
    }

    /// Starts a TOTP setup for `user`; the secret and the backup codes shown.
    pub(crate) async fn start_totp_setup(&self, user: &str) -> (String, Vec<String>) {
        let setup = self
            .tf
            .totp()
            .start_setup(user, &format!("{user}@example.com"))
            .await
            .unwrap();
        let codes = setup
            .backup_codes()
            .iter()
            .map(|c| c.expose().to_owned())
            .collect();
        (setup.secret_base32().to_owned(), codes)
    }

    /// Enrols TOTP for `user`; returns the secret and the backup codes.
    pub(crate) async fn enroll_totp(&self, user: &str) -> (String, Vec<String>) {
        let (secret, codes) = self.start_totp_setup(user).await;
        self.tf
            .totp()
            .confirm_setup(user, &self.totp(&secret))
            .await
            .unwrap();
        // Move to the next step so that the confirmation code's step is in the past.
        self.advance(30);
        (secret, codes)
    }

    /// Enrols email 2FA for `user` at `address`.
    pub(crate) async fn enroll_email(&self, user: &str, address: &str) {
        self.tf.email().start_setup(user, address).await.unwrap();
        let code = self.last_code(address);
        self.tf.email().confirm_setup(user, &code).await.unwrap();
    }

    /// Enrols a phone (SMS) factor for `user` at `phone` (E.164).
    pub(crate) async fn enroll_sms(&self, user: &str, phone: &str) {
        self.tf.sms().start_setup(user, phone).await.unwrap();
        let code = self.last_text_code(phone);
        self.tf.sms().confirm_setup(user, &code).await.unwrap();
    }

    /// The code in the most recent text to `phone` (E.164).
    pub(crate) fn last_text_code(&self, phone: &str) -> String {
        let text = self.texts.last_to(phone).expect("a text was sent");
        text.body
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() >= 6)
            .expect("the text holds a code")
            .to_owned()
    }

    /// The code in the most recent message to `to`, as the user reads it (digits only).
    pub(crate) fn last_code(&self, to: &str) -> String {
        let msg = self.mailer.last_to(to).expect("a message was sent");
        code_in(&msg.text).expect("the message holds a code")
    }

    /// Starts a login that must answer with a challenge.
    pub(crate) async fn challenge(&self, user: &str) -> Challenge {
        match self
            .tf
            .begin_login(LoginContext::none(), user)
            .await
            .unwrap()
        {
            LoginStep::Challenge(c) => c,
            LoginStep::Complete(_) => panic!("expected a challenge"),
        }
    }

    /// As [`Harness::challenge`], retrying transient store errors (see [`retry`]): for stores
    /// on a server that was just stopped, stalled or cut off.
    pub(crate) async fn challenge_retrying(&self, user: &str) -> Challenge {
        match retry(|| self.tf.begin_login(LoginContext::none(), user))
            .await
            .0
        {
            Ok(LoginStep::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }
}

/// A user id with a random part, so that tests can share one database.
pub(crate) fn fresh_user(prefix: &str) -> String {
    format!("{prefix}-{}", super::stores::random_word())
}

/// Calls `f` until it gives something other than a transient store error (for at most a
/// minute): that outcome, and how many transient errors came first. Fails when the errors
/// outlast the minute.
pub(crate) async fn retry<T, Fut>(mut f: impl FnMut() -> Fut) -> (Result<T, Error>, usize)
where
    Fut: Future<Output = Result<T, Error>>,
{
    let mut transient = 0;
    let until_not_transient = async {
        loop {
            match f().await {
                Err(e) if e.is_transient() => {
                    transient += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), until_not_transient).await {
        Ok(outcome) => (outcome, transient),
        Err(_) => panic!(
            "the server never came back: still a transient error after {transient} tries in a \
             minute"
        ),
    }
}
