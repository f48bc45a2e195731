//! Shared test harness: a service on memory stores, a manual clock, a recording mailer and a
//! recording event sink, plus helpers to read codes the way a user would.

#[cfg(feature = "webauthn")]
pub(crate) mod authenticator;
pub(crate) mod faults;
#[cfg(all(feature = "test-util", any(feature = "redis", feature = "postgres")))]
pub(crate) mod proxy;
pub(crate) mod stores;
#[cfg(all(feature = "test-util", any(feature = "redis", feature = "postgres")))]
// A build without every server-backed suite leaves some helpers unused.
#[cfg_attr(not(all(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) mod svc;

use std::sync::Arc;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    clock::Timestamp, store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingEvents, testing::RecordingMailer, testing::RecordingTextSender,
    totp::totp_code, totp::TotpParams, totp::TotpSecret, Keyring, LoginStep, Policy,
    TwoFactorService,
};

/// A fixed start time well past 2038, so no test depends on 32-bit time.
pub(crate) const START: u64 = 2_200_000_000;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Harness {
    pub(crate) tf: TwoFactorService,
    pub(crate) clock: ManualClock,
    pub(crate) mailer: RecordingMailer,
    pub(crate) texts: RecordingTextSender,
    pub(crate) events: RecordingEvents,
    pub(crate) otp: Arc<MemoryOtpStore>,
    pub(crate) enrollments: Arc<MemoryEnrollmentStore>,
    /// Passwords the service has had checked.
    pub(crate) password_checks: Arc<std::sync::atomic::AtomicU64>,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    pub(crate) fn with_policy(policy: Policy) -> Self {
        Self::with(policy, Keyring::generate())
    }

    pub(crate) fn with(policy: Policy, keys: Keyring) -> Self {
        Self::assemble(policy, keys, |checks| {
            move |_user: &str, password: &str| {
                checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                password == PASSWORD
            }
        })
    }

    /// A harness whose service checks passwords with `verifier` (its `password_checks` stays 0).
    pub(crate) fn with_password_verifier(
        verifier: impl twofactor::service::PasswordVerifier,
    ) -> Self {
        Self::assemble(Policy::default(), Keyring::generate(), |_| verifier)
    }

    fn assemble<V: twofactor::service::PasswordVerifier>(
        policy: Policy,
        keys: Keyring,
        verifier: impl FnOnce(Arc<std::sync::atomic::AtomicU64>) -> V,
    ) -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        let mailer = RecordingMailer::new();
        let texts = RecordingTextSender::new();
        let events = RecordingEvents::new();
        let otp = Arc::new(MemoryOtpStore::new());
        let enrollments = Arc::new(MemoryEnrollmentStore::new());
        let password_checks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let checks = password_checks.clone();
        let tf = TwoFactorService::builder()
            .issuer("Acme")
            .keys(keys)
            .otp_store(otp.clone())
            .enrollments(enrollments.clone())
            .mailer(mailer.clone())
            .text_sender(texts.clone())
            .clock(clock.clone())
            .policy(policy)
            .events(events.clone())
            .password_verifier(verifier(checks))
            .build()
            .unwrap();
        Harness {
            tf,
            clock,
            mailer,
            texts,
            events,
            otp,
            enrollments,
            password_checks,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        use twofactor::clock::Clock;
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

    /// Enrols TOTP for `user`; returns the secret and the backup codes.
    pub(crate) async fn enroll_totp(&self, user: &str) -> (String, Vec<String>) {
        let setup = self
            .tf
            .totp()
            .start_setup(user, &format!("{user}@example.com"))
            .await
            .unwrap();
        let secret = setup.secret_base32().to_owned();
        let codes = setup
            .backup_codes()
            .iter()
            .map(|c| c.expose().to_owned())
            .collect();
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
    pub(crate) async fn challenge(&self, user: &str) -> twofactor::Challenge {
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
}

/// The first run of digits (spaces allowed inside) of 6 to 10 digits in `text`.
pub(crate) fn code_in(text: &str) -> Option<String> {
    for line in text.lines() {
        let t = line.trim();
        let digits: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        if (6..=10).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            return Some(digits);
        }
    }
    None
}

/// A numeric code that differs from `code`.
pub(crate) fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            let d = c.to_digit(10).unwrap();
            char::from_digit((d + 1) % 10, 10).unwrap()
        })
        .collect()
}

/// Runs `n` copies of `f` at once on a multi-threaded runtime and returns their results.
pub(crate) async fn race<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut handles = Vec::new();
    for i in 0..n {
        let fut = f(i);
        let b = barrier.clone();
        handles.push(tokio::spawn(async move {
            b.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
