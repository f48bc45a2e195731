//! Disable (seeds 002, 003): password plus a fresh factor; each refusal with its own error.

use twofactor::LoginContext;
use twofactor::{mail::MessagePurpose, mail::SecurityAction, Error, LoginStep};

use crate::support::{wrong, Harness, PASSWORD};

#[tokio::test]
async fn disable_needs_the_password_and_a_current_code() {
    let h = Harness::new();
    let (secret, codes) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "alice@example.com").await;
    assert!(matches!(
        h.tf.account()
            .disable("u1", "wrong password", &h.totp(&secret))
            .await,
        Err(Error::InvalidPassword)
    ));
    assert!(matches!(
        h.tf.account()
            .disable("u1", PASSWORD, &wrong(&h.totp(&secret)))
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(matches!(
        h.tf.account().disable("u1", PASSWORD, "").await,
        Err(Error::MalformedCode)
    ));
    assert!(h.tf.account().status("u1").await.unwrap().enabled);

    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled);
    assert!(status.methods.is_empty());
    assert_eq!(status.backup_codes_remaining, 0);
    assert_eq!(
        h.mailer.last_to("alice@example.com").unwrap().purpose,
        MessagePurpose::TwoFactorDisabled
    );
    // Logins no longer ask for a code, and the old backup codes are gone.
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await.unwrap(),
        LoginStep::Complete(_)
    ));
    assert!(matches!(
        h.tf.account().disable("u1", PASSWORD, &codes[0]).await,
        Err(Error::NotEnrolled)
    ));
}

#[tokio::test]
async fn disable_with_a_backup_code() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("u1").await;
    h.tf.account()
        .disable("u1", PASSWORD, &codes[0])
        .await
        .unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

#[tokio::test]
async fn disable_with_a_step_up_email_code() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    // Without a step-up code sent, a numeric guess is wrong.
    assert!(h
        .tf
        .account()
        .disable("u1", PASSWORD, "123456")
        .await
        .is_err());
    h.advance(60);
    h.tf.account()
        .send_step_up_code("u1", SecurityAction::DisableTwoFactor)
        .await
        .unwrap();
    let code = h.last_code("alice@example.com");
    h.tf.account().disable("u1", PASSWORD, &code).await.unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

#[tokio::test]
async fn wrong_passwords_count_towards_the_lockout() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    for _ in 0..10 {
        assert!(matches!(
            h.tf.account()
                .disable("u1", "guess", &h.totp(&secret))
                .await,
            Err(Error::InvalidPassword)
        ));
    }
    assert!(matches!(
        h.tf.account()
            .disable("u1", PASSWORD, &h.totp(&secret))
            .await,
        Err(Error::Locked { .. })
    ));
}

#[tokio::test]
async fn without_a_password_verifier_disable_refuses() {
    let tf = twofactor::TwoFactorService::builder()
        .issuer("Acme")
        .keys(twofactor::Keyring::generate())
        .otp_store(twofactor::store::MemoryOtpStore::new())
        .enrollments(twofactor::store::MemoryEnrollmentStore::new())
        .mailer(twofactor::testing::RecordingMailer::new())
        .build()
        .unwrap();
    tf.totp().start_setup("u1", "a").await.unwrap();
    assert!(matches!(
        tf.account().disable("u1", PASSWORD, "123456").await,
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn a_replayed_totp_code_in_disable_is_refused_and_reported() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "alice@example.com").await;
    let code = h.totp(&secret);
    let ch = h.challenge("u1").await;
    h.tf.verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();
    assert!(matches!(
        h.tf.account().disable("u1", PASSWORD, &code).await,
        Err(Error::CodeReused)
    ));
    assert_eq!(
        h.mailer.last_to("alice@example.com").unwrap().purpose,
        MessagePurpose::TotpReplayRejected
    );
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
}

/// No success in another flow resets the password limit: 1000 rounds of a right code at login
/// and a wrong password at disable evaluate no more wrong passwords than the threshold.
#[tokio::test]
async fn no_code_success_resets_the_password_limit() {
    use std::sync::atomic::Ordering;
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let threshold = u64::from(h.tf.policy().lockout_threshold);
    let mut evaluated = 0;
    for _ in 0..1000 {
        h.advance(30);
        let ch = h.challenge("u1").await;
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await
            .unwrap();
        let before = h.password_checks.load(Ordering::SeqCst);
        let refused =
            h.tf.account()
                .disable("u1", "guess", &wrong(&h.totp(&secret)))
                .await;
        assert!(
            matches!(refused, Err(Error::InvalidPassword | Error::Locked { .. })),
            "{refused:?}"
        );
        evaluated += h.password_checks.load(Ordering::SeqCst) - before;
    }
    assert_eq!(
        evaluated, threshold,
        "wrong passwords evaluated in 1000 rounds"
    );
    // The right password is refused too until the limit lapses; then it works, and ends the run.
    assert!(matches!(
        h.tf.account()
            .disable("u1", PASSWORD, &h.totp(&secret))
            .await,
        Err(Error::Locked { .. })
    ));
    h.advance(86_400);
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
}

/// The host's password check, async: a user table that must be awaited, and that may fail.
struct HostUsers {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[twofactor::async_trait]
impl twofactor::service::PasswordVerifier for HostUsers {
    async fn verify(
        &self,
        _user: &str,
        password: &str,
    ) -> Result<bool, twofactor::error::BoxError> {
        // A real lookup awaits a database; this one yields to the executor the same way.
        tokio::task::yield_now().await;
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "user database unreachable",
            )
            .into());
        }
        Ok(password == PASSWORD)
    }
}

/// A host that cannot check the password gets a typed error carrying its cause, not "wrong
/// password"; nothing is disabled; once the host is back the same call succeeds.
#[tokio::test]
async fn a_failing_password_check_is_its_own_error_and_disables_nothing() {
    use std::error::Error as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    let down = std::sync::Arc::new(AtomicBool::new(true));
    let h = Harness::with_password_verifier(HostUsers { down: down.clone() });
    let (secret, _) = h.enroll_totp("u1").await;
    let e =
        h.tf.account()
            .disable("u1", PASSWORD, &h.totp(&secret))
            .await
            .unwrap_err();
    assert!(matches!(e, Error::PasswordCheck(_)), "{e:?}");
    assert_eq!(e.code(), "password_check_failed");
    assert_eq!(e.http_status(), 503);
    assert_eq!(
        e.source().map(|s| s.to_string()).as_deref(),
        Some("user database unreachable")
    );
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
    down.store(false, Ordering::SeqCst);
    h.advance(30);
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

/// With an async verifier the flows work as with a closure: a wrong password is
/// `InvalidPassword`, the right one disables.
#[tokio::test]
async fn an_async_password_verifier_decides_disable() {
    let h = Harness::with_password_verifier(HostUsers {
        down: Default::default(),
    });
    let (secret, _) = h.enroll_totp("u1").await;
    assert!(matches!(
        h.tf.account()
            .disable("u1", "wrong password", &h.totp(&secret))
            .await,
        Err(Error::InvalidPassword)
    ));
    h.advance(30);
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}
