//! The second login step (all seeds): challenge, limits, lockout, expiry, resend, input handling.

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{ChallengeToken, Error, LoginStep, Method, Policy};

use crate::support::{wrong, Harness};

#[tokio::test]
async fn a_user_without_factors_completes_at_once() {
    let h = Harness::new();
    match h
        .tf
        .begin_login(LoginContext::none(), "nobody")
        .await
        .unwrap()
    {
        LoginStep::Complete(v) => {
            assert_eq!(v.user(), "nobody");
            assert_eq!(v.method(), None);
        }
        LoginStep::Challenge(_) => panic!("no factor: no challenge"),
    }
}

#[tokio::test]
async fn login_with_totp_returns_verified_and_consumes_the_challenge() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    assert_eq!(ch.methods(), &[Method::Totp, Method::BackupCode]);
    assert!(!ch.email_sent());
    assert!(ch.token().as_str().starts_with("tfc2_"));
    // The 12-byte user tag and 256 random bits as 59 base64url characters after the prefix.
    assert_eq!(ch.token().as_str().len(), 5 + 59);
    // Spaces and dashes are ignored.
    let code = h.totp(&secret);
    let typed = format!("{} {}", &code[..3], &code[3..]);
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &typed)
            .await
            .unwrap();
    assert_eq!(v.user(), "u1");
    assert_eq!(v.method(), Some(Method::Totp));
    assert_eq!(v.backup_codes_remaining(), 10);
    assert_eq!(v.verified_at().as_unix_secs(), h.now());
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(status.last_verified_at.unwrap().as_unix_secs(), h.now());
    // The challenge is single use.
    h.advance(30);
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await,
        Err(Error::InvalidChallenge)
    ));
}

#[tokio::test]
async fn clock_skew_of_one_step_is_accepted_two_is_not() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    // Leave the confirmation code's step well behind, so that now - 1 step is unused.
    h.advance(60);
    let now = h.now();
    let ch = h.challenge("u1").await;
    for off in [-60i64, 60] {
        let t = (now as i64 + off) as u64;
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp_at(&secret, t))
                .await,
            Err(Error::InvalidCode { .. })
        ));
    }
    let v =
        h.tf.verify_login(
            &LoginContext::new(),
            ch.token(),
            &h.totp_at(&secret, now - 30),
        )
        .await
        .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
}

#[tokio::test]
async fn a_challenge_allows_five_attempts_then_is_void() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let bad = wrong(&h.totp(&secret));
    for remaining in (0..5).rev() {
        match h
            .tf
            .verify_login(LoginContext::none(), ch.token(), &bad)
            .await
        {
            Err(Error::InvalidCode { attempts_remaining }) => {
                assert_eq!(attempts_remaining, Some(remaining))
            }
            other => panic!("expected InvalidCode, got {other:?}"),
        }
    }
    // The sixth attempt, even with the right code, is refused, and so is every later one: the
    // challenge is void (it stays refused until it lapses, so that a flood never removes it from
    // under an attempt still in flight).
    for _ in 0..2 {
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
                .await,
            Err(Error::TooManyAttempts)
        ));
    }
}

#[tokio::test]
async fn failures_across_challenges_lock_the_user_with_escalation() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    // Ten failures over several challenges (a new login does not reset the budget).
    for _ in 0..5 {
        let ch = h.challenge("u1").await;
        for _ in 0..2 {
            let r =
                h.tf.verify_login(LoginContext::none(), ch.token(), "000000")
                    .await;
            assert!(matches!(r, Err(Error::InvalidCode { .. })), "{r:?}");
        }
    }
    // Locked for 15 minutes: even a right code is not evaluated, and no challenge is issued.
    match h.tf.begin_login(LoginContext::none(), "u1").await {
        Err(Error::Locked { retry_after }) => assert_eq!(retry_after, Duration::from_secs(900)),
        other => panic!("expected Locked, got {other:?}"),
    }
    h.advance(899);
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await,
        Err(Error::Locked { .. })
    ));
    h.advance(1);
    // Ten more failures lock for 30 minutes.
    for _ in 0..5 {
        let ch = h.challenge("u1").await;
        for _ in 0..2 {
            assert!(h
                .tf
                .verify_login(LoginContext::none(), ch.token(), "000000")
                .await
                .is_err());
        }
    }
    match h.tf.begin_login(LoginContext::none(), "u1").await {
        Err(Error::Locked { retry_after }) => assert_eq!(retry_after, Duration::from_secs(1800)),
        other => panic!("expected Locked, got {other:?}"),
    }
    h.advance(1800);
    // A success resets the run of failures.
    let ch = h.challenge("u1").await;
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
        .await
        .unwrap();
    for _ in 0..3 {
        let ch = h.challenge("u1").await;
        for _ in 0..3 {
            assert!(matches!(
                h.tf.verify_login(LoginContext::none(), ch.token(), "000000")
                    .await,
                Err(Error::InvalidCode { .. })
            ));
        }
    }
    // 9 failures after the reset: not locked yet.
    assert!(h.tf.begin_login(LoginContext::none(), "u1").await.is_ok());
}

#[tokio::test]
async fn the_lockout_holds_exactly_over_a_thousand_challenges() {
    let h = Harness::new();
    h.enroll_totp("u1").await;
    // An attacker who knows the password opens 1000 challenges and guesses once on each. Only
    // the first ten guesses of the day are evaluated before the first lock; during locks nothing
    // is evaluated. Count the guesses evaluated (InvalidCode) over a simulated day.
    let mut evaluated = 0u32;
    let mut tries = 0u32;
    let start = h.now();
    while h.now() < start + 24 * 3600 && tries < 1000 {
        match h.tf.begin_login(LoginContext::none(), "u1").await {
            Ok(LoginStep::Challenge(ch)) => {
                tries += 1;
                match h
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), "000000")
                    .await
                {
                    Err(Error::InvalidCode { .. }) => evaluated += 1,
                    Err(Error::Locked { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            Err(Error::Locked { retry_after }) => h.clock.advance(retry_after),
            other => panic!("unexpected {other:?}"),
        }
    }
    // 15 + 30 + ... minutes of locks: 70 guesses fit in a day, never more than NIST's 100.
    assert_eq!(evaluated, 70, "evaluated {evaluated} guesses in a day");
}

#[tokio::test]
async fn the_challenge_expires_with_its_ttl() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    assert_eq!(ch.expires_at().as_unix_secs(), h.now() + 300);
    h.advance(299);
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
        .await
        .unwrap();

    h.advance(30);
    let ch = h.challenge("u1").await;
    h.advance(300);
    let err =
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await
            .unwrap_err();
    assert!(
        matches!(err, Error::InvalidChallenge | Error::Expired),
        "{err:?}"
    );
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let text = ch.token().as_str().to_owned();
    // Flip one character of the token.
    let mut chars: Vec<char> = text.chars().collect();
    let i = 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let token = ChallengeToken::parse(&tampered).unwrap();
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), &token, &h.totp(&secret))
            .await,
        Err(Error::InvalidChallenge)
    ));
    for bad in [
        "",
        "tfc1_",
        "tfc1_abc",
        &text[..text.len() - 1],
        "tfc2_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(ChallengeToken::parse(bad).is_err(), "{bad}");
    }
    // A token of another service instance (another key) is unknown here.
    let other = Harness::new();
    other.enroll_totp("u1").await;
    let foreign = other.challenge("u1").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), foreign.token(), &h.totp(&secret))
            .await,
        Err(Error::InvalidChallenge)
    ));
}

#[tokio::test]
async fn malformed_input_is_a_typed_error_and_costs_no_attempt() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let huge = "1".repeat(10_000);
    for bad in ["", "   ", "١٢٣٤٥٦", "12345６", &huge, "12$456", "💥"] {
        assert!(
            matches!(
                h.tf.verify_login(LoginContext::none(), ch.token(), bad)
                    .await,
                Err(Error::MalformedCode)
            ),
            "{bad:?}"
        );
    }
    // Wrong-length codes are evaluated as wrong codes.
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), "12345")
            .await,
        Err(Error::InvalidCode {
            attempts_remaining: Some(4)
        })
    ));
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tighter_policy_is_honoured() {
    let mut policy = Policy::default();
    policy.challenge_max_attempts = 3;
    policy.challenge_ttl = Duration::from_secs(60);
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    assert_eq!(ch.expires_at().as_unix_secs(), h.now() + 60);
    for _ in 0..3 {
        assert!(h
            .tf
            .verify_login(LoginContext::none(), ch.token(), "000000")
            .await
            .is_err());
    }
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await,
        Err(Error::TooManyAttempts)
    ));
}

#[tokio::test]
async fn over_cap_policies_are_refused_at_build() {
    let mut policy = Policy::default();
    policy.challenge_ttl = Duration::from_secs(601);
    assert!(policy.validate().is_err());
    let mut policy = Policy::default();
    policy.totp_skew = 2;
    assert!(policy.validate().is_err());
    let mut policy = Policy::default();
    policy.totp_secret_bytes = 15;
    assert!(policy.validate().is_err());
    let mut policy = Policy::default();
    policy.email_code_digits = 5;
    assert!(policy.validate().is_err());
    // Huge lock durations saturate instead of panicking.
    let mut policy = Policy::default();
    policy.lockout_base = Duration::from_secs(u64::MAX / 2);
    policy.lockout_max = Duration::from_secs(u64::MAX);
    assert_eq!(policy.lock_duration(1000), Duration::from_secs(u64::MAX));
}
