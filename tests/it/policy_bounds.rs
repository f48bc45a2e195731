//! Policy bounds: no accepted policy lets more than 100 failed codes per user be evaluated in
//! 24 hours (NIST SP 800-63B §5.2.2) unless the host says so with a `dangerous_` setter, and the
//! figure `Policy::worst_case_failures_per_day` computes agrees with a day of real attempts.

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{Error, LoginStep, Policy};

use crate::support::{wrong, Harness};

/// A day of an attacker who holds the password: new challenges, wrong codes, waiting out every
/// lock as it lifts. Returns the failed codes evaluated.
async fn attack_for_a_day(h: &Harness, secret: &str) -> u64 {
    let start = h.now();
    let mut evaluated = 0;
    while h.now() < start + 86_400 {
        let ch = match h.tf.begin_login(LoginContext::none(), "victim").await {
            Ok(LoginStep::Challenge(c)) => c,
            Err(Error::Locked { retry_after }) => {
                h.advance(retry_after.as_secs());
                continue;
            }
            other => panic!("unexpected {other:?}"),
        };
        loop {
            match h
                .tf
                .verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(secret)))
                .await
            {
                Err(Error::InvalidCode { .. }) => evaluated += 1,
                Err(Error::TooManyAttempts) => break,
                Err(Error::Locked { retry_after }) => {
                    h.advance(retry_after.as_secs());
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    evaluated
}

#[tokio::test]
async fn the_default_policy_evaluates_70_failures_a_day_and_a_real_day_agrees() {
    let policy = Policy::default();
    assert_eq!(policy.worst_case_failures_per_day(), 70);
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("victim").await;
    assert_eq!(attack_for_a_day(&h, &secret).await, 70);
}

#[tokio::test]
async fn a_short_lock_policy_is_bounded_by_its_computed_figure() {
    // Accepted, but close to the bound: the simulated day may not pass the computed figure.
    let mut policy = Policy::default();
    policy.lockout_threshold = 5;
    policy.lockout_base = Duration::from_secs(3_600);
    let worst = policy.worst_case_failures_per_day();
    assert!(worst <= Policy::MAX_FAILURES_PER_DAY, "{worst}");
    policy.validate().unwrap();
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("victim").await;
    let evaluated = attack_for_a_day(&h, &secret).await;
    assert!(
        evaluated <= worst,
        "{evaluated} evaluated, {worst} computed"
    );
    assert!(evaluated > 0);
}

#[test]
fn policies_over_100_a_day_are_refused_unless_dangerous() {
    let mut fast_lock = Policy::default();
    fast_lock.lockout_base = Duration::from_secs(1);
    fast_lock.lockout_max = Duration::from_secs(1);
    let mut high_threshold = Policy::default();
    high_threshold.lockout_threshold = 100;
    let mut short_window = Policy::default();
    short_window.failure_window = Duration::from_secs(60);
    for (name, policy) in [
        ("a 1-second lock", fast_lock),
        ("a threshold of 100", high_threshold),
        ("a one-minute failure window", short_window),
    ] {
        let worst = policy.worst_case_failures_per_day();
        assert!(worst > Policy::MAX_FAILURES_PER_DAY, "{name}: {worst}");
        match policy.validate() {
            Err(Error::InvalidConfig(msg)) => {
                assert!(msg.contains(&worst.to_string()), "{name}: {msg}")
            }
            other => panic!("{name}: {other:?}"),
        }
        policy
            .clone()
            .dangerous_allow_over_100_failures_per_day()
            .validate()
            .unwrap();
    }
    // With a one-minute window a run stopped one short of the lock lapses every minute: 9 a
    // minute for a day, past the 10,000 the figure saturates at.
    let mut p = Policy::default();
    p.failure_window = Duration::from_secs(60);
    assert_eq!(p.worst_case_failures_per_day(), 10_000);
}
