//! Email codes (seeds 000, 001, 004): email 2FA enrolment, login by email code, registration
//! verification, resend with cooldown and cap, purpose and challenge isolation.

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{mail::MessagePurpose, Error, Method};

use crate::support::{self, code_in, wrong, Harness};

#[tokio::test]
async fn email_setup_proves_the_address_before_it_becomes_a_factor() {
    let h = Harness::new();
    h.tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let msg = h.mailer.last_to("alice@example.com").unwrap();
    assert_eq!(msg.purpose, MessagePurpose::EmailSetupCode);
    assert!(msg.text.contains("expires in 5 minutes"));
    // Not a factor yet.
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
    let code = h.last_code("alice@example.com");
    assert_eq!(code.len(), 6);
    assert!(matches!(
        h.tf.email().confirm_setup("u1", &wrong(&code)).await,
        Err(Error::InvalidCode {
            attempts_remaining: Some(4)
        })
    ));
    let address = h.tf.email().confirm_setup("u1", &code).await.unwrap();
    assert_eq!(address, "alice@example.com");
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.methods, vec![Method::Email]);
    assert_eq!(status.email.as_deref(), Some("alice@example.com"));
    // The code is single use.
    assert!(h.tf.email().confirm_setup("u1", &code).await.is_err());
    assert!(matches!(
        h.tf.email().start_setup("u1", "other@example.com").await,
        Err(Error::AlreadyEnrolled)
    ));
}

#[tokio::test]
async fn bad_addresses_are_refused() {
    let h = Harness::new();
    for bad in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "a b@example.com",
        "a@b",
        "<a@b.c>",
        "a@b.c\r\nBcc: x@y.z",
    ] {
        assert!(
            matches!(
                h.tf.email().start_setup("u1", bad).await,
                Err(Error::InvalidInput(_))
            ),
            "{bad:?}"
        );
    }
    assert!(h.mailer.messages().is_empty());
}

#[tokio::test]
async fn login_by_email_code() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    h.mailer.clear();
    let ch = h.challenge("u1").await;
    assert_eq!(ch.methods(), &[Method::Email]);
    assert!(ch.email_sent());
    let msg = h.mailer.last_to("alice@example.com").unwrap();
    assert_eq!(msg.purpose, MessagePurpose::LoginCode);
    let code = code_in(&msg.text).unwrap();
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Email));
    // Used once.
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .is_err());
}

#[tokio::test]
async fn a_code_for_one_challenge_never_answers_another() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    let a = h.challenge("u1").await;
    let code_a = h.last_code("alice@example.com");
    let b = h.challenge("u1").await;
    let code_b = h.last_code("alice@example.com");
    assert_ne!(a.token(), b.token());
    if code_a != code_b {
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), b.token(), &code_a)
                .await,
            Err(Error::InvalidCode { .. })
        ));
    }
    h.tf.verify_login(LoginContext::none(), b.token(), &code_b)
        .await
        .unwrap();
    h.tf.verify_login(LoginContext::none(), a.token(), &code_a)
        .await
        .unwrap();
}

#[tokio::test]
async fn codes_are_bound_to_their_purpose_and_user() {
    let h = Harness::new();
    // A registration code does not confirm an email setup, nor the other way round.
    h.tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let reg = h.last_code("alice@example.com");
    assert!(matches!(
        h.tf.email().confirm_setup("u1", &reg).await,
        Err(Error::NothingPending)
    ));
    h.tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let setup = h.last_code("alice@example.com");
    if reg != setup {
        assert!(matches!(
            h.tf.email().confirm_setup("u1", &reg).await,
            Err(Error::InvalidCode { .. })
        ));
    }
    // Another user's code does not verify this one.
    h.tf.email()
        .send_verification_code("u2", "bob@example.com")
        .await
        .unwrap();
    let bob = h.last_code("bob@example.com");
    if bob != reg {
        assert!(h
            .tf
            .email()
            .verify_registration_code("u1", &bob)
            .await
            .is_err());
    }
    assert_eq!(
        h.tf.email()
            .verify_registration_code("u1", &reg)
            .await
            .unwrap(),
        "alice@example.com"
    );
    h.tf.email().confirm_setup("u1", &setup).await.unwrap();
    // A login code does not serve the disable flow's step-up.
    let ch = h.challenge("u1").await;
    let login = h.last_code("alice@example.com");
    assert!(h
        .tf
        .account()
        .disable("u1", support::PASSWORD, &login)
        .await
        .is_err());
    h.tf.verify_login(LoginContext::none(), ch.token(), &login)
        .await
        .unwrap();
}

#[tokio::test]
async fn registration_code_expires_with_its_ttl() {
    let h = Harness::new();
    h.tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let code = h.last_code("alice@example.com");
    h.advance(299);
    h.tf.email()
        .verify_registration_code("u1", &code)
        .await
        .unwrap();

    h.advance(60);
    h.tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let code = h.last_code("alice@example.com");
    h.advance(300);
    assert!(h
        .tf
        .email()
        .verify_registration_code("u1", &code)
        .await
        .is_err());
}

#[tokio::test]
async fn registration_code_allows_five_attempts() {
    let h = Harness::new();
    h.tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let code = h.last_code("alice@example.com");
    for _ in 0..5 {
        assert!(matches!(
            h.tf.email()
                .verify_registration_code("u1", &wrong(&code))
                .await,
            Err(Error::InvalidCode { .. })
        ));
    }
    assert!(matches!(
        h.tf.email().verify_registration_code("u1", &code).await,
        Err(Error::TooManyAttempts)
    ));
    // The code is gone.
    assert!(h
        .tf
        .email()
        .verify_registration_code("u1", &code)
        .await
        .is_err());
}

#[tokio::test]
async fn resend_has_a_cooldown_a_cap_and_resets_no_counter() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    h.advance(60);
    h.mailer.clear();
    let ch = h.challenge("u1").await;
    let first = h.last_code("alice@example.com");
    // Two wrong guesses, then a resend: the attempt budget is not reset.
    for _ in 0..2 {
        assert!(h
            .tf
            .verify_login(LoginContext::none(), ch.token(), &wrong(&first))
            .await
            .is_err());
    }
    match h.tf.resend_code(ch.token()).await {
        Err(Error::Cooldown { retry_after }) => assert_eq!(retry_after, Duration::from_secs(60)),
        other => panic!("expected Cooldown, got {other:?}"),
    }
    h.advance(59);
    assert!(matches!(
        h.tf.resend_code(ch.token()).await,
        Err(Error::Cooldown { retry_after }) if retry_after == Duration::from_secs(1)
    ));
    h.advance(1);
    h.tf.resend_code(ch.token()).await.unwrap();
    let second = h.last_code("alice@example.com");
    assert_eq!(h.mailer.messages().len(), 2);
    // The new code replaces the old one.
    if first != second {
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &first)
                .await,
            Err(Error::InvalidCode {
                attempts_remaining: Some(2)
            })
        ));
    } else {
        assert!(h
            .tf
            .verify_login(LoginContext::none(), ch.token(), &wrong(&first))
            .await
            .is_err());
    }
    h.tf.verify_login(LoginContext::none(), ch.token(), &second)
        .await
        .unwrap();
}

#[tokio::test]
async fn at_most_five_sends_per_window() {
    let mut policy = twofactor::Policy::default();
    policy.resend_cooldown = Duration::from_secs(30);
    let h = Harness::with_policy(policy);
    h.enroll_email("u1", "alice@example.com").await;
    h.advance(15 * 60);
    h.mailer.clear();
    let ch = h.challenge("u1").await; // send 1
    for _ in 0..4 {
        h.advance(30);
        h.tf.resend_code(ch.token()).await.unwrap();
    }
    assert_eq!(h.mailer.messages().len(), 5);
    h.advance(30);
    assert!(matches!(
        h.tf.resend_code(ch.token()).await,
        Err(Error::RateLimited { .. })
    ));
    assert_eq!(h.mailer.messages().len(), 5);
}

#[tokio::test]
async fn a_user_with_totp_and_email_may_answer_with_either() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "alice@example.com").await;
    let ch = h.challenge("u1").await;
    assert_eq!(
        ch.methods(),
        &[Method::Totp, Method::Email, Method::BackupCode]
    );
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
    h.advance(60);
    let ch = h.challenge("u1").await;
    let code = h.last_code("alice@example.com");
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Email));
}

#[tokio::test]
async fn the_send_cap_also_holds_across_new_logins() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    h.advance(15 * 60);
    h.mailer.clear();
    for _ in 0..5 {
        let ch = h.challenge("u1").await;
        assert!(ch.email_sent());
    }
    // Email is the only method: the sixth login in the window is refused with a retry time.
    match h.tf.begin_login(LoginContext::none(), "u1").await {
        Err(e @ Error::RateLimited { .. }) => assert!(e.retry_after().is_some()),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(h.mailer.messages().len(), 5);
    h.advance(15 * 60);
    assert!(h.challenge("u1").await.email_sent());
}

/// A resend on a challenge without email is its own error, not "two-factor is not set up", and
/// it starts no cooldown and sends nothing: the user can still answer the challenge by TOTP.
#[tokio::test]
async fn resend_without_an_email_method_is_its_own_error() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.advance(60);
    h.mailer.clear();
    let ch = h.challenge("u1").await;
    assert!(!ch.methods().contains(&twofactor::Method::Email));
    let e = h.tf.resend_code(ch.token()).await.unwrap_err();
    assert!(matches!(e, Error::NoEmailMethod), "{e:?}");
    assert_eq!(e.code(), "no_email_method");
    assert_eq!(e.public_code(), "no_email_method");
    assert_eq!(e.http_status(), 409);
    assert_ne!(e.public_message(), Error::NotEnrolled.public_message());
    // Again at once: still the same answer, no cooldown was started.
    assert!(matches!(
        h.tf.resend_code(ch.token()).await,
        Err(Error::NoEmailMethod)
    ));
    assert!(h.mailer.messages().is_empty());
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
        .await
        .unwrap();
}
