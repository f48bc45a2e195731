//! A changed factor ends the challenges opened before it (ASVS 2.8.6: revocation takes effect
//! at once). A challenge carries what its answer is checked against, so without this a factor
//! removed after `begin_login` would still pass through the old challenge: after `disable`, a
//! completed recovery, regenerated backup codes, an added factor, a recovery request; and a lock
//! ends the user's live challenges too (Keycloak #26177: guessing resumed on old challenges once
//! a lock lifted).
//!
//! The race: 32 right-code logins on challenges opened before a recovery's deadline, against
//! `recovery().process` at the deadline, on memory, Redis and PostgreSQL. A login that started
//! after `process` returned `Completed` must never succeed.

use std::time::Duration;

use twofactor::{account::RecoveryProgress, Challenge, Error, LoginContext, LoginStep, Policy};

use crate::support::{wrong, Harness, PASSWORD};

#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
fn challenge_of(step: LoginStep) -> Challenge {
    match step {
        LoginStep::Challenge(c) => c,
        LoginStep::Complete(_) => panic!("expected a challenge"),
    }
}

async fn verify(h: &Harness, c: &Challenge, code: &str) -> Result<twofactor::Verified, Error> {
    h.tf.verify_login(LoginContext::none(), c.token(), code)
        .await
}

/// `disable` (with a code of the next TOTP step): the right TOTP code on a challenge opened
/// before it is refused.
#[tokio::test]
async fn a_challenge_opened_before_disable_is_dead_after_it() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let old = h.challenge("u1").await;
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    h.advance(30);
    let after = verify(&h, &old, &h.totp(&secret)).await;
    assert!(
        matches!(after, Err(Error::InvalidChallenge)),
        "two-factor is off, yet the old challenge answered {after:?}"
    );
}

/// A recovery that completes (`recovery().process` at its deadline) ends the challenges opened
/// before it, even one opened while it was pending.
#[tokio::test]
async fn a_challenge_opened_before_a_recovery_completes_is_dead_after_it() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let effective_at = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    // Opened a minute before the deadline: still live (challenge_ttl is 5 minutes) after it.
    h.advance(effective_at.as_unix_secs() - h.now() - 60);
    let old = h.challenge("u1").await;
    h.advance(61);
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Completed
    );
    let after = verify(&h, &old, &h.totp(&secret)).await;
    assert!(
        matches!(after, Err(Error::InvalidChallenge)),
        "the recovery removed every factor, yet the old challenge answered {after:?}"
    );
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

/// New backup codes end the challenges opened before: neither a backup code shown before nor the
/// TOTP code passes on one.
#[tokio::test]
async fn a_challenge_opened_before_backup_codes_are_regenerated_is_dead_after_it() {
    let h = Harness::new();
    let (secret, codes) = h.enroll_totp("u1").await;
    let old = h.challenge("u1").await;
    let fresh =
        h.tf.backup_codes()
            .regenerate("u1", &h.totp(&secret))
            .await
            .unwrap();
    h.advance(30);
    let shown_before = verify(&h, &old, &codes[0]).await;
    assert!(
        matches!(shown_before, Err(Error::InvalidChallenge)),
        "{shown_before:?}"
    );
    let totp = verify(&h, &old, &h.totp(&secret)).await;
    assert!(
        matches!(totp, Err(Error::InvalidChallenge)),
        "the codes changed, yet the old challenge answered {totp:?}"
    );
    // A challenge opened now works, with the new codes.
    let new = h.challenge("u1").await;
    let v = verify(&h, &new, fresh[0].expose()).await.unwrap();
    assert_eq!(v.method(), Some(twofactor::Method::BackupCode));
}

/// An added factor (email) ends the challenges opened before, which do not offer it.
#[tokio::test]
async fn a_challenge_opened_before_an_email_factor_is_added_is_dead_after_it() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let old = h.challenge("u1").await;
    h.enroll_email("u1", "u1@example.com").await;
    let after = verify(&h, &old, &h.totp(&secret)).await;
    assert!(
        matches!(after, Err(Error::InvalidChallenge)),
        "the factors changed, yet the old challenge answered {after:?}"
    );
    let new = h.challenge("u1").await;
    assert!(new.methods().contains(&twofactor::Method::Email));
    verify(&h, &new, &h.totp(&secret)).await.unwrap();
}

/// An added phone (SMS) factor ends the challenges opened before.
#[tokio::test]
async fn a_challenge_opened_before_an_sms_factor_is_added_is_dead_after_it() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let old = h.challenge("u1").await;
    h.enroll_sms("u1", "+4915112345678").await;
    let after = verify(&h, &old, &h.totp(&secret)).await;
    assert!(matches!(after, Err(Error::InvalidChallenge)), "{after:?}");
    let new = h.challenge("u1").await;
    verify(&h, &new, &h.totp(&secret)).await.unwrap();
}

/// A security key added or removed ends the challenges opened before: a challenge that offered
/// the removed key (or did not offer the new one) is refused, its TOTP answer too.
#[cfg(feature = "webauthn")]
#[tokio::test]
async fn a_challenge_opened_before_a_security_key_is_added_or_removed_is_dead_after_it() {
    use crate::support::authenticator::SoftKey;
    let h = Harness::with_policy(crate::support::authenticator::policy());
    let (secret, _) = h.enroll_totp("u1").await;
    let before_add = h.challenge("u1").await;
    let mut key = SoftKey::new();
    let options =
        h.tf.security_keys()
            .start_registration("u1", "U One")
            .await
            .unwrap();
    let response = key.create(options.as_json()).await;
    let info =
        h.tf.security_keys()
            .finish_registration("u1", &response, "key")
            .await
            .unwrap();
    let after = verify(&h, &before_add, &h.totp(&secret)).await;
    assert!(matches!(after, Err(Error::InvalidChallenge)), "{after:?}");
    let before_remove = h.challenge("u1").await;
    let assertion = key
        .get(&crate::support::authenticator::options(&before_remove))
        .await;
    h.advance(30);
    h.tf.security_keys()
        .remove("u1", &info.id, PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    let with_key = verify(&h, &before_remove, &assertion).await;
    assert!(
        matches!(with_key, Err(Error::InvalidChallenge)),
        "{with_key:?}"
    );
}

/// A challenge opened before a recovery request cannot pass without knowing of it (it would not
/// cancel the recovery); one opened after it passes and cancels the recovery.
#[tokio::test]
async fn a_challenge_opened_before_a_recovery_request_is_dead_and_a_new_one_cancels_it() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let old = h.challenge("u1").await;
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    let after = verify(&h, &old, &h.totp(&secret)).await;
    assert!(
        matches!(after, Err(Error::InvalidChallenge)),
        "the old challenge answered {after:?} and left the recovery pending"
    );
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.recovery_pending_until.is_some());
    let new = h.challenge("u1").await;
    verify(&h, &new, &h.totp(&secret)).await.unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(
        status.recovery_pending_until, None,
        "a pass on a challenge opened after the request cancels it"
    );
}

/// Keycloak #26177: a challenge with attempts left when the user gets locked is dead once the
/// lock lifts (it has not lapsed: its lifetime is longer than the lock), for a wrong code and the
/// right one alike; a challenge opened after the lock works.
#[tokio::test]
async fn a_lock_ends_the_challenges_live_when_it_was_set() {
    let mut policy = Policy::default();
    policy.challenge_ttl = Duration::from_secs(600);
    policy.lockout_threshold = 3;
    policy.lockout_base = Duration::from_secs(60);
    policy.validate().unwrap();
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    let first = h.challenge("u1").await;
    let bad = wrong(&h.totp(&secret));
    assert!(matches!(
        verify(&h, &first, &bad).await,
        Err(Error::InvalidCode {
            attempts_remaining: Some(4)
        })
    ));
    // The lock is set on another challenge: the first one still has four attempts left.
    let second = h.challenge("u1").await;
    verify(&h, &second, &bad).await.unwrap_err();
    verify(&h, &second, &bad).await.unwrap_err();
    assert!(matches!(
        verify(&h, &first, &h.totp(&secret)).await,
        Err(Error::Locked { .. })
    ));
    h.advance(61);
    let guess = verify(&h, &first, &wrong(&h.totp(&secret))).await;
    assert!(
        matches!(guess, Err(Error::InvalidChallenge)),
        "guessing resumed on a challenge from before the lock: {guess:?}"
    );
    let right = verify(&h, &first, &h.totp(&secret)).await;
    assert!(matches!(right, Err(Error::InvalidChallenge)), "{right:?}");
    let new = h.challenge("u1").await;
    verify(&h, &new, &h.totp(&secret)).await.unwrap();
}

// ---- the race ----------------------------------------------------------------------------

/// The race needs the conformance runner (feature `test-util`).
#[cfg(feature = "test-util")]
mod race {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use twofactor::TwoFactorService;

    use super::*;

    use crate::support::every_store::Stores;

    /// What one round of the race saw.
    #[derive(Debug, Default)]
    struct Round {
        /// Whether `process` completed the recovery (a login that passed first cancels it).
        completed: bool,
        /// Logins that succeeded and started before `process` returned (or when it did not
        /// complete the recovery).
        ok_before: u32,
        /// Logins that succeeded and started after `process` returned `Completed`: the defect.
        ok_after: u32,
        /// Logins that started after `process` returned `Completed`.
        started_after: u32,
    }

    /// Rounds of the race on `stores`, each with a user of its own.
    const ROUNDS: usize = 10;
    /// Right-code logins per round: half race `process`, half start once it has returned.
    const LOGINS: usize = 32;

    /// A service on `stores` with a manual clock; a policy whose per-user ceiling the 32 logins
    /// (most refused as replays of a TOTP step) cannot reach, so no lock ends the challenges before
    /// the recovery does.
    fn service(stores: &Stores) -> (TwoFactorService, twofactor::testing::ManualClock) {
        let mut policy = Policy::default().dangerous_allow_over_100_failures_per_day();
        policy.lockout_threshold = 100;
        let h = crate::support::AnyHarness::builder_on(stores)
            .policy(policy)
            .build();
        (h.tf, h.clock)
    }

    /// The TOTP code of `secret` `back` steps before the clock's time.
    fn code_at(clock: &twofactor::testing::ManualClock, secret: &str, back: u64) -> String {
        use twofactor::{clock::Clock, totp::totp_code, totp::TotpParams, totp::TotpSecret};
        let secret = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            secret.as_bytes(),
            TotpParams::default(),
            clock.now().as_unix_secs() - 30 * back,
        )
    }

    /// One round: a user with TOTP and a pending recovery, 32 challenges opened a minute before
    /// its deadline. At the deadline `process` runs; 16 logins start with it (the code of the
    /// previous step, which the skew of one step accepts), and 16 once it has returned (the current
    /// step's code, so that a racing login that passed first does not make them replays). Every
    /// start and every return of `process` takes a number from one sequence.
    async fn round(stores: &Stores, n: usize) -> Round {
        let (tf, clock) = service(stores);
        let user = format!("race-{n}-{}", crate::support::stores::random_word());
        let setup = tf.totp().start_setup(&user, "x").await.unwrap();
        let secret = setup.secret_base32().to_owned();
        tf.totp()
            .confirm_setup(&user, &code_at(&clock, &secret, 0))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        let effective_at = tf.recovery().request(&user, PASSWORD).await.unwrap();
        {
            use twofactor::clock::Clock;
            let wait = effective_at.as_unix_secs() - clock.now().as_unix_secs() - 60;
            clock.advance(Duration::from_secs(wait));
        }
        let mut tokens = Vec::with_capacity(LOGINS);
        for _ in 0..LOGINS {
            let step = tf.begin_login(LoginContext::none(), &user).await.unwrap();
            tokens.push(challenge_of(step).token().clone());
        }
        clock.advance(Duration::from_secs(61));
        let (previous, current) = (code_at(&clock, &secret, 1), code_at(&clock, &secret, 0));

        let seq = Arc::new(AtomicU64::new(0));
        let processed = Arc::new(AtomicU64::new(u64::MAX));
        let (returned, returned_rx) = tokio::sync::watch::channel(false);
        let barrier = Arc::new(tokio::sync::Barrier::new(LOGINS / 2 + 1));
        let process = {
            let (tf, user, seq, processed, barrier) = (
                tf.clone(),
                user.clone(),
                seq.clone(),
                processed.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let progress = tf.recovery().process(&user).await.unwrap();
                let at = seq.fetch_add(1, Ordering::SeqCst);
                if progress == RecoveryProgress::Completed {
                    processed.store(at, Ordering::SeqCst);
                }
                returned.send_replace(true);
                progress
            })
        };
        let mut logins = Vec::with_capacity(LOGINS);
        for (i, token) in tokens.into_iter().enumerate() {
            let racing = i < LOGINS / 2;
            let code = if racing { &previous } else { &current }.clone();
            let (tf, seq, barrier) = (tf.clone(), seq.clone(), barrier.clone());
            let mut returned = returned_rx.clone();
            logins.push(tokio::spawn(async move {
                if racing {
                    barrier.wait().await;
                    // Spread over the scheduler's turns: some before `process` writes, some during.
                    for _ in 0..i {
                        tokio::task::yield_now().await;
                    }
                } else {
                    returned.wait_for(|done| *done).await.unwrap();
                }
                let started = seq.fetch_add(1, Ordering::SeqCst);
                let result = tf.verify_login(LoginContext::none(), &token, &code).await;
                (started, result.is_ok())
            }));
        }
        let progress = process.await.unwrap();
        let processed = processed.load(Ordering::SeqCst);
        let mut seen = Round {
            completed: progress == RecoveryProgress::Completed,
            ..Round::default()
        };
        for login in logins {
            let (started, ok) = login.await.unwrap();
            let after = started > processed;
            seen.started_after += u32::from(after);
            match (ok, after) {
                (true, true) => seen.ok_after += 1,
                (true, false) => seen.ok_before += 1,
                _ => {}
            }
        }
        seen
    }

    /// Runs the race on `stores` and checks every round: no login that started after `process`
    /// returned `Completed` succeeded.
    async fn race_on(name: &str, stores: &Stores) {
        let mut rounds = Vec::with_capacity(ROUNDS);
        for n in 0..ROUNDS {
            rounds.push(round(stores, n).await);
        }
        let completed = rounds.iter().filter(|r| r.completed).count();
        let bad_rounds = rounds.iter().filter(|r| r.ok_after > 0).count();
        let ok_before: u32 = rounds.iter().map(|r| r.ok_before).sum();
        let ok_after: u32 = rounds.iter().map(|r| r.ok_after).sum();
        let started_after: u32 = rounds.iter().map(|r| r.started_after).sum();
        println!(
            "race on {name}: {ROUNDS} rounds, {completed} completed by process; logins started \
             after process returned: {started_after}; successes before: {ok_before}, after: \
             {ok_after} (in {bad_rounds} rounds)"
        );
        for (n, r) in rounds.iter().enumerate() {
            assert_eq!(
                r.ok_after, 0,
                "{name}, round {n}: a login that started after the recovery completed succeeded \
                 ({r:?})"
            );
        }
    }

    fn run_race<F: std::future::Future<Output = Option<Stores>>>(
        name: &str,
        make: impl FnOnce() -> F,
    ) {
        twofactor::store::conformance::run(name, make, |stores: Arc<Stores>| async move {
            race_on(name, &stores).await;
        });
    }

    #[cfg(feature = "test-util")]
    #[test]
    fn a_login_racing_a_recovery_never_passes_after_it_memory() {
        run_race("memory", || async {
            Some((
                Arc::new(twofactor::store::MemoryOtpStore::new())
                    as Arc<dyn twofactor::store::OtpStore>,
                Arc::new(twofactor::store::MemoryEnrollmentStore::new())
                    as Arc<dyn twofactor::store::EnrollmentStore>,
            ))
        });
    }

    #[cfg(all(feature = "test-util", feature = "redis"))]
    #[test]
    fn a_login_racing_a_recovery_never_passes_after_it_redis() {
        run_race("redis", || async {
            let otp = crate::support::stores::redis_store().await?;
            let enrollments = otp.enrollment_store();
            Some((
                Arc::new(otp) as Arc<dyn twofactor::store::OtpStore>,
                Arc::new(enrollments) as Arc<dyn twofactor::store::EnrollmentStore>,
            ))
        });
    }

    #[cfg(all(feature = "test-util", feature = "postgres"))]
    #[test]
    fn a_login_racing_a_recovery_never_passes_after_it_postgres() {
        run_race("postgres", || async {
            let sql = Arc::new(crate::support::stores::postgres_store().await?);
            Some((
                sql.clone() as Arc<dyn twofactor::store::OtpStore>,
                sql as Arc<dyn twofactor::store::EnrollmentStore>,
            ))
        });
    }
}
