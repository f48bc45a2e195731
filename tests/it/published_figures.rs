//! Figures the documentation publishes, each pinned through the flow that produces it.

use std::time::Duration;

use twofactor::{Error, LoginContext, LoginStep, Policy};

use crate::support::{wrong, Harness};

/// Fails codes until the user is locked; the lock's length as `begin_login` reports it, with
/// the clock standing where the lock was set.
async fn lock_once(h: &Harness, user: &str, secret: &str) -> Duration {
    loop {
        match h.tf.begin_login(LoginContext::none(), user).await {
            Err(Error::Locked { retry_after }) => return retry_after,
            Ok(LoginStep::Challenge(ch)) => loop {
                match h
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(secret)))
                    .await
                {
                    Err(Error::InvalidCode { .. }) => {}
                    Err(Error::TooManyAttempts | Error::Locked { .. }) => break,
                    other => panic!("a wrong code: {other:?}"),
                }
            },
            other => panic!("{other:?}"),
        }
    }
}

/// The manual's default lock: after 10 failures, 15 minutes, doubling with each further lock in
/// the run, and never longer than 24 hours (`Policy::lockout_max`).
#[tokio::test]
async fn the_default_lock_doubles_from_15_minutes_to_a_24_hour_cap() {
    let policy = Policy::default();
    assert_eq!(policy.lockout_threshold, 10);
    assert_eq!(policy.lockout_base, Duration::from_secs(15 * 60));
    assert_eq!(policy.lockout_max, Duration::from_secs(24 * 3600));
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("lock-cap").await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let lock = lock_once(&h, "lock-cap", &secret).await;
        seen.push(lock.as_secs() / 60);
        // Wait the lock out: the run (and its level) is remembered for a day after it.
        h.advance(lock.as_secs());
    }
    assert_eq!(
        seen,
        [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440],
        "lock lengths in minutes, one per lock of the run"
    );
}
