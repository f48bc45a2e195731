//! A service on any stores with a manual clock, for the suites that run flows on real servers,
//! and a retry loop over transient store errors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    clock::Timestamp, store::EnrollmentStore, store::OtpStore, testing::ManualClock,
    testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret, Challenge,
    Error, Keyring, LoginStep, TwoFactorService,
};

use super::{stores, PASSWORD, START};

/// A service on the given stores with a manual clock.
pub(crate) struct Svc {
    pub(crate) tf: TwoFactorService,
    pub(crate) clock: ManualClock,
    keys: Keyring,
}

impl Svc {
    pub(crate) fn new(otp: Arc<dyn OtpStore>, enrollments: Arc<dyn EnrollmentStore>) -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        Self::with(otp, enrollments, Keyring::generate(), clock)
    }

    /// Another instance with the same keys and clock on other store handles.
    pub(crate) fn twin(
        &self,
        otp: Arc<dyn OtpStore>,
        enrollments: Arc<dyn EnrollmentStore>,
    ) -> Self {
        Self::with(otp, enrollments, self.keys.clone(), self.clock.clone())
    }

    fn with(
        otp: Arc<dyn OtpStore>,
        enrollments: Arc<dyn EnrollmentStore>,
        keys: Keyring,
        clock: ManualClock,
    ) -> Self {
        let tf = TwoFactorService::builder()
            .issuer("Acme")
            .keys(keys.clone())
            .otp_store(otp)
            .enrollments(enrollments)
            .mailer(RecordingMailer::new())
            .clock(clock.clone())
            .password_verifier(|_user: &str, password: &str| password == PASSWORD)
            .build()
            .unwrap();
        Svc { tf, clock, keys }
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    pub(crate) fn totp(&self, secret: &str) -> String {
        use twofactor::clock::Clock;
        let secret = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            secret.as_bytes(),
            TotpParams::default(),
            self.clock.now().as_unix_secs(),
        )
    }

    /// Starts a TOTP setup; the secret and the backup codes shown.
    pub(crate) async fn start_setup(&self, user: &str) -> (String, Vec<String>) {
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

    pub(crate) async fn enroll(&self, user: &str) -> (String, Vec<String>) {
        let (secret, codes) = self.start_setup(user).await;
        self.tf
            .totp()
            .confirm_setup(user, &self.totp(&secret))
            .await
            .unwrap();
        self.advance(30);
        (secret, codes)
    }

    pub(crate) async fn challenge(&self, user: &str) -> Challenge {
        match retry(|| self.tf.begin_login(LoginContext::none(), user))
            .await
            .0
        {
            Ok(LoginStep::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }
}

pub(crate) fn user() -> String {
    format!("failure-{}", stores::random_word())
}

/// Calls `f` until it gives something other than a transient store error (bounded): that
/// outcome, and how many transient errors came first.
pub(crate) async fn retry<T, Fut>(mut f: impl FnMut() -> Fut) -> (Result<T, Error>, usize)
where
    Fut: Future<Output = Result<T, Error>>,
{
    let mut transient = 0;
    for _ in 0..300 {
        match f().await {
            Err(e) if e.is_transient() => {
                transient += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return (other, transient),
        }
    }
    panic!("the server never came back: still a transient error after 300 tries");
}
