//! A mailer that fails: the flow fails closed, leaves no usable code and starts no cooldown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use twofactor::LoginContext;

use async_trait::async_trait;
use twofactor::{
    clock::Timestamp, error::DeliveryError, mail::Mailer, mail::Message,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingMailer, Error, Keyring, LoginStep, TwoFactorService,
};

use crate::support::{code_in, START};

/// Records messages, or refuses them while `down` is set.
#[derive(Clone, Default)]
struct FlakyMailer {
    down: Arc<AtomicBool>,
    inner: RecordingMailer,
}

#[async_trait]
impl Mailer for FlakyMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(DeliveryError::transient(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "mail server down",
            )));
        }
        self.inner.send(message).await
    }
}

fn service(mailer: FlakyMailer) -> TwoFactorService {
    service_with_clock(mailer, ManualClock::new(Timestamp::from_unix_secs(START)))
}

fn service_with_clock(mailer: FlakyMailer, clock: ManualClock) -> TwoFactorService {
    TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(mailer)
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_failed_setup_send_leaves_nothing_and_allows_an_immediate_retry() {
    let mailer = FlakyMailer::default();
    let tf = service(mailer.clone());
    mailer.down.store(true, Ordering::SeqCst);
    let err = tf
        .email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Delivery(_)));
    assert!(err.is_transient());
    assert_eq!(err.http_status(), 503);
    // Nothing pending: no code was left behind.
    assert!(matches!(
        tf.email().confirm_setup("u1", "123456").await,
        Err(Error::NothingPending)
    ));
    // No cooldown started: the retry goes out at once.
    mailer.down.store(false, Ordering::SeqCst);
    tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let code = code_in(&mailer.inner.messages()[0].text).unwrap();
    tf.email().confirm_setup("u1", &code).await.unwrap();
}

#[tokio::test]
async fn a_failed_login_send_for_an_email_only_user_fails_closed() {
    let mailer = FlakyMailer::default();
    let tf = service(mailer.clone());
    tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let code = code_in(&mailer.inner.messages()[0].text).unwrap();
    tf.email().confirm_setup("u1", &code).await.unwrap();

    mailer.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        tf.begin_login(LoginContext::none(), "u1").await,
        Err(Error::Delivery(_))
    ));
    mailer.down.store(false, Ordering::SeqCst);
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!("email user gets a challenge");
    };
    assert!(ch.email_sent());
    let code = code_in(&mailer.inner.messages().last().unwrap().text).unwrap();
    tf.verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();
}

/// An email-2FA user in the middle of a login: the mailer, clock, service, challenge and the code
/// mailed for it.
async fn email_user_in_login() -> (
    FlakyMailer,
    ManualClock,
    TwoFactorService,
    twofactor::Challenge,
    String,
) {
    let mailer = FlakyMailer::default();
    let clock = ManualClock::new(Timestamp::from_unix_secs(START));
    let tf = service_with_clock(mailer.clone(), clock.clone());
    tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let code = code_in(&mailer.inner.messages()[0].text).unwrap();
    tf.email().confirm_setup("u1", &code).await.unwrap();
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!("email user gets a challenge");
    };
    let first = code_in(&mailer.inner.messages().last().unwrap().text).unwrap();
    (mailer, clock, tf, ch, first)
}

#[tokio::test]
async fn a_failed_resend_keeps_the_previous_code_and_starts_no_cooldown() {
    let (mailer, clock, tf, ch, first) = email_user_in_login().await;
    clock.advance(std::time::Duration::from_secs(60));
    mailer.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        tf.resend_code(ch.token()).await,
        Err(Error::Delivery(_))
    ));
    // No cooldown: the retry is accepted at once once the mailer is back.
    mailer.down.store(false, Ordering::SeqCst);
    let sent_before = mailer.inner.messages().len();
    tf.resend_code(ch.token()).await.unwrap();
    assert_eq!(mailer.inner.messages().len(), sent_before + 1);
    let second = code_in(&mailer.inner.messages().last().unwrap().text).unwrap();
    if first != second {
        // The successful resend replaced the first code.
        assert!(tf
            .verify_login(LoginContext::none(), ch.token(), &first)
            .await
            .is_err());
    }
    tf.verify_login(LoginContext::none(), ch.token(), &second)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_previous_code_survives_a_failed_resend() {
    let (mailer, clock, tf, ch, first) = email_user_in_login().await;
    clock.advance(std::time::Duration::from_secs(60));
    mailer.down.store(true, Ordering::SeqCst);
    assert!(tf.resend_code(ch.token()).await.is_err());
    tf.verify_login(LoginContext::none(), ch.token(), &first)
        .await
        .unwrap();
}
