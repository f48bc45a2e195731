//! The error mapping a host relies on (SECURITY.md: CHK-17; ASVS 5.0 6.3.8): every `Error`
//! variant's machine code, HTTP status, `retry_after` and transience; one uniform public message
//! for every failure of the code step (unknown challenge, wrong, expired, reused or malformed
//! code), produced by the real flows; and `retry_after` on every `Locked`, `Cooldown` and
//! `RateLimited` the flows return, counting down with the clock.

use std::collections::HashSet;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    error::DeliveryError, error::StoreError, error::StoreErrorKind, ChallengeToken, Error, Policy,
};

use crate::support::{wrong, Harness};

/// The message every failure of the code step shares.
const UNIFORM: &str = "The code is invalid or has expired.";

/// One row per variant: the error, its machine code, HTTP status, `retry_after`, transience.
fn table() -> Vec<(Error, &'static str, u16, Option<Duration>, bool)> {
    let secs = Duration::from_secs;
    vec![
        (
            Error::InvalidCode {
                attempts_remaining: Some(2),
            },
            "invalid_code",
            401,
            None,
            false,
        ),
        (
            Error::InvalidCode {
                attempts_remaining: None,
            },
            "invalid_code",
            401,
            None,
            false,
        ),
        (Error::MalformedCode, "malformed_code", 400, None, false),
        (Error::Expired, "expired", 401, None, false),
        (
            Error::InvalidChallenge,
            "invalid_challenge",
            401,
            None,
            false,
        ),
        (Error::CodeReused, "code_reused", 401, None, false),
        (
            Error::TooManyAttempts,
            "too_many_attempts",
            429,
            None,
            false,
        ),
        (
            Error::Locked {
                retry_after: secs(900),
            },
            "locked",
            429,
            Some(secs(900)),
            false,
        ),
        (
            Error::Cooldown {
                retry_after: secs(42),
            },
            "cooldown",
            429,
            Some(secs(42)),
            false,
        ),
        (
            Error::RateLimited {
                retry_after: secs(600),
            },
            "rate_limited",
            429,
            Some(secs(600)),
            false,
        ),
        (Error::NotEnrolled, "not_enrolled", 404, None, false),
        (Error::NoEmailMethod, "no_email_method", 409, None, false),
        (Error::AlreadyEnrolled, "already_enrolled", 409, None, false),
        (Error::NothingPending, "nothing_pending", 409, None, false),
        (Error::InvalidPassword, "invalid_password", 401, None, false),
        (
            Error::PasswordCheck("db down".into()),
            "password_check_failed",
            503,
            None,
            false,
        ),
        (
            Error::InvalidInput("bad"),
            "invalid_input",
            400,
            None,
            false,
        ),
        (
            Error::InvalidConfig("bad".into()),
            "invalid_config",
            500,
            None,
            false,
        ),
        (Error::Crypto, "crypto_failed", 500, None, false),
        (
            StoreError::unavailable("down").into(),
            "store_unavailable",
            503,
            None,
            true,
        ),
        (
            StoreError::timeout("slow").into(),
            "store_unavailable",
            503,
            None,
            true,
        ),
        (
            StoreError::corrupt("junk").into(),
            "store_unavailable",
            503,
            None,
            false,
        ),
        (
            StoreError::other("odd").into(),
            "store_unavailable",
            503,
            None,
            false,
        ),
        (
            DeliveryError::transient("421").into(),
            "delivery_failed",
            503,
            None,
            true,
        ),
        (
            DeliveryError::permanent("550").into(),
            "delivery_failed",
            503,
            None,
            false,
        ),
    ]
}

#[test]
fn every_variant_has_its_code_status_retry_after_and_transience() {
    for (e, code, status, retry, transient) in table() {
        assert_eq!(e.code(), code, "{e:?}");
        assert_eq!(e.http_status(), status, "{e:?}");
        assert_eq!(e.retry_after(), retry, "{e:?}");
        assert_eq!(e.is_transient(), transient, "{e:?}");
        // Machine codes are stable snake_case identifiers.
        assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        // Every message is a sentence for an end user, never the internal detail.
        let public = e.public_message();
        assert!(public.ends_with('.') && public.len() < 80, "{public}");
        for detail in ["bad", "down", "slow", "junk", "odd", "421", "550", "store"] {
            assert!(!public.to_lowercase().contains(detail), "{public}");
        }
        assert!(!e.to_string().is_empty());
    }
    // One machine code per kind of failure (store kinds share one, as do the delivery ones).
    let codes: HashSet<&str> = table().iter().map(|r| r.1).collect();
    assert_eq!(codes.len(), 20);
    // Only the 429s that name a time carry one; TooManyAttempts means "start again".
    for (e, ..) in table() {
        assert_eq!(
            e.retry_after().is_some(),
            matches!(
                e,
                Error::Locked { .. } | Error::Cooldown { .. } | Error::RateLimited { .. }
            )
        );
    }
}

#[test]
fn retry_after_shows_in_the_message_and_sources_are_kept() {
    let e = Error::Locked {
        retry_after: Duration::from_secs(900),
    };
    assert!(e.to_string().contains("900"), "{e}");
    let e = Error::Cooldown {
        retry_after: Duration::from_secs(42),
    };
    assert!(e.to_string().contains("42"), "{e}");

    // Store and delivery errors keep their cause for the host's logs, and their kind.
    let e: Error = StoreError::timeout("connection reset").into();
    let source = std::error::Error::source(&e).unwrap();
    assert!(source.to_string().contains("timed out"));
    assert!(std::error::Error::source(source)
        .unwrap()
        .to_string()
        .contains("connection reset"));
    let Error::Store(inner) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(inner.kind(), StoreErrorKind::Timeout);
    let e: Error = DeliveryError::permanent("550 no such user").into();
    let source = std::error::Error::source(&e).unwrap();
    assert!(std::error::Error::source(source)
        .unwrap()
        .to_string()
        .contains("550"));
}

#[test]
fn code_step_failures_share_one_public_message() {
    for e in [
        Error::InvalidCode {
            attempts_remaining: Some(0),
        },
        Error::MalformedCode,
        Error::Expired,
        Error::InvalidChallenge,
        Error::CodeReused,
        Error::NothingPending,
    ] {
        assert_eq!(e.public_message(), UNIFORM, "{e:?}");
    }
    for e in [
        Error::TooManyAttempts,
        Error::NotEnrolled,
        Error::InvalidPassword,
        StoreError::unavailable("x").into(),
    ] {
        assert_ne!(e.public_message(), UNIFORM, "{e:?}");
    }
}

/// The failures a client can provoke at the login code step, through the real flows.
#[tokio::test]
async fn login_failures_get_the_uniform_message() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.enroll_email("u2", "b@example.com").await;
    let mut seen = Vec::new();

    // Unknown and tampered challenges.
    let unknown = ChallengeToken::parse(&format!("tfc2_{}", "A".repeat(59))).unwrap();
    seen.push(
        h.tf.verify_login(LoginContext::none(), &unknown, "123456")
            .await
            .unwrap_err(),
    );
    let ch = h.challenge("u1").await;
    let mut tampered = ch.token().as_str().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    if let Ok(t) = ChallengeToken::parse(&tampered) {
        seen.push(
            h.tf.verify_login(LoginContext::none(), &t, "123456")
                .await
                .unwrap_err(),
        );
    }
    seen.push(ChallengeToken::parse("tfc1_short").unwrap_err());
    // Wrong and malformed codes.
    let right = h.totp(&secret);
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&right))
            .await
            .unwrap_err(),
    );
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch.token(), "12a456!")
            .await
            .unwrap_err(),
    );
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch.token(), "١٢٣٤٥٦")
            .await
            .unwrap_err(),
    );
    // A replayed code, and a used challenge.
    h.tf.verify_login(LoginContext::none(), ch.token(), &right)
        .await
        .unwrap();
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch.token(), &right)
            .await
            .unwrap_err(),
    );
    let ch2 = h.challenge("u1").await;
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch2.token(), &right)
            .await
            .unwrap_err(),
    );
    // An expired challenge, and an expired email code on a live one.
    let ch3 = h.challenge("u1").await;
    h.advance(5 * 60);
    seen.push(
        h.tf.verify_login(LoginContext::none(), ch3.token(), &h.totp(&secret))
            .await
            .unwrap_err(),
    );
    let mut policy = Policy::default();
    policy.email_code_ttl = Duration::from_secs(60);
    let h2 = Harness::with_policy(policy);
    h2.enroll_email("u2", "b@example.com").await;
    let ch4 = h2.challenge("u2").await;
    let code = h2.last_code("b@example.com");
    h2.advance(60);
    seen.push(
        h2.tf
            .verify_login(LoginContext::none(), ch4.token(), &code)
            .await
            .unwrap_err(),
    );

    let codes: HashSet<&str> = seen.iter().map(Error::code).collect();
    for expected in [
        "invalid_challenge",
        "invalid_code",
        "malformed_code",
        "code_reused",
    ] {
        assert!(codes.contains(expected), "{expected} not among {codes:?}");
    }
    for e in &seen {
        assert_eq!(e.public_message(), UNIFORM, "{e:?}");
        assert!(matches!(e.http_status(), 400 | 401), "{e:?}");
    }
}

/// The same for codes outside a login: registration, email setup and TOTP setup.
#[tokio::test]
async fn confirmation_failures_get_the_uniform_message() {
    let h = Harness::new();
    let mut seen = Vec::new();
    // A registration code: wrong, malformed, expired, used.
    h.tf.email()
        .send_verification_code("u1", "a@example.com")
        .await
        .unwrap();
    let code = h.last_code("a@example.com");
    seen.push(
        h.tf.email()
            .verify_registration_code("u1", &wrong(&code))
            .await
            .unwrap_err(),
    );
    seen.push(
        h.tf.email()
            .verify_registration_code("u1", "12345")
            .await
            .unwrap_err(),
    );
    h.tf.email()
        .verify_registration_code("u1", &code)
        .await
        .unwrap();
    seen.push(
        h.tf.email()
            .verify_registration_code("u1", &code)
            .await
            .unwrap_err(),
    );
    h.tf.email()
        .start_setup("u1", "a@example.com")
        .await
        .unwrap();
    let code = h.last_code("a@example.com");
    h.advance(5 * 60);
    seen.push(h.tf.email().confirm_setup("u1", &code).await.unwrap_err());
    // A code for which nothing was ever sent.
    seen.push(
        h.tf.email()
            .verify_registration_code("u9", "123456")
            .await
            .unwrap_err(),
    );
    // A TOTP setup: wrong code, and after the setup lapsed.
    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    let right = h.totp(setup.secret_base32());
    seen.push(
        h.tf.totp()
            .confirm_setup("u1", &wrong(&right))
            .await
            .unwrap_err(),
    );
    h.advance(15 * 60);
    seen.push(
        h.tf.totp()
            .confirm_setup("u1", &h.totp(setup.secret_base32()))
            .await
            .unwrap_err(),
    );
    for e in &seen {
        assert_eq!(e.public_message(), UNIFORM, "{e:?}");
    }
}

#[tokio::test]
async fn locked_carries_retry_after_counting_down() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    for _ in 0..2 {
        let ch = h.challenge("u1").await;
        for _ in 0..5 {
            let e =
                h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(&secret)))
                    .await
                    .unwrap_err();
            assert_eq!(e.code(), "invalid_code");
        }
    }
    let e =
        h.tf.begin_login(LoginContext::none(), "u1")
            .await
            .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(15 * 60)));
    assert_eq!(e.http_status(), 429);
    h.advance(10 * 60);
    let e =
        h.tf.begin_login(LoginContext::none(), "u1")
            .await
            .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(5 * 60)));
    // The step-up flows say the same.
    let e =
        h.tf.backup_codes()
            .regenerate("u1", &h.totp(&secret))
            .await
            .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(5 * 60)));
    h.advance(5 * 60);
    assert!(h.tf.begin_login(LoginContext::none(), "u1").await.is_ok());
}

#[tokio::test]
async fn attempts_remaining_count_down_to_too_many_attempts() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    for left in (0..5).rev() {
        let e =
            h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(&secret)))
                .await
                .unwrap_err();
        assert!(
            matches!(e, Error::InvalidCode { attempts_remaining: Some(n) } if n == left),
            "{e:?}"
        );
    }
    let e =
        h.tf.verify_login(LoginContext::none(), ch.token(), "123456")
            .await
            .unwrap_err();
    assert_eq!(e.code(), "too_many_attempts");
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn cooldown_and_rate_limited_carry_retry_after() {
    let h = Harness::new();
    let send = || h.tf.email().send_verification_code("u1", "a@example.com");
    send().await.unwrap();
    let e = send().await.unwrap_err();
    assert_eq!(e.code(), "cooldown");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    h.advance(20);
    let e = send().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(40)));
    h.advance(40);
    // Five sends per 15 minutes: after four more, the sixth is refused until the window ends.
    for _ in 0..4 {
        send().await.unwrap();
        h.advance(61);
    }
    let e = send().await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    assert_eq!(e.http_status(), 429);
    let wait = e.retry_after().unwrap();
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(15 * 60));
    h.advance(wait.as_secs());
    send().await.unwrap();

    // The same on a login challenge's resend.
    h.enroll_email("u2", "b@example.com").await;
    let ch = h.challenge("u2").await;
    let e = h.tf.resend_code(ch.token()).await.unwrap_err();
    assert_eq!(e.code(), "cooldown");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
}
