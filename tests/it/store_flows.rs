//! The whole flows against every store: login with TOTP, email code and backup code; lockout;
//! replay; regeneration and disable; durability across service instances; and a Redis that dies
//! in the middle of a login. Redis and PostgreSQL read their URLs from the environment.

use std::sync::Arc;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{events::Event, Challenge, Error, Keyring, LoginStep, Method};

use crate::support::{
    every_store, fresh_user, stores, wrong, AnyHarness, Harness, Stores, PASSWORD,
};

/// A user id of its own, so flows can share one database.
fn user() -> String {
    fresh_user("flow-user")
}

/// The flow bodies, each run against every store.
mod flows {
    use super::*;

    /// Enrol TOTP, log in with it; the challenge is single use; a second instance sees it all.
    pub(crate) async fn login_with_totp(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, _) = f.enroll_totp(&u).await;
        let status = f.tf.account().status(&u).await.unwrap();
        assert!(status.enabled);
        assert_eq!(status.methods, vec![Method::Totp, Method::BackupCode]);
        assert_eq!(status.backup_codes_remaining, 10);

        let ch = f.challenge(&u).await;
        let v =
            f.tf.verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
                .await
                .unwrap();
        assert_eq!((v.user(), v.method()), (u.as_str(), Some(Method::Totp)));
        f.advance(30);
        assert!(matches!(
            f.tf.verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
                .await,
            Err(Error::InvalidChallenge)
        ));

        // Another instance on the same stores: the challenge made here is answered there.
        let twin = f.twin();
        let ch = f.challenge(&u).await;
        let v = twin
            .tf
            .verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
            .await
            .unwrap();
        assert_eq!(v.method(), Some(Method::Totp));
        let status = twin.tf.account().status(&u).await.unwrap();
        assert_eq!(status.last_verified_at.unwrap().as_unix_secs(), f.now());
    }

    /// Enrol email, log in with the mailed code; the code of one challenge never answers another.
    pub(crate) async fn login_with_email_code(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let addr = format!("{u}@example.com");
        f.enroll_email(&u, &addr).await;
        let ch1 = f.challenge(&u).await;
        assert_eq!(ch1.methods(), &[Method::Email]);
        let code1 = f.last_code(&addr);
        f.advance(61);
        let ch2 = f.challenge(&u).await;
        let code2 = f.last_code(&addr);
        if code1 != code2 {
            assert!(f
                .tf
                .verify_login(LoginContext::none(), ch2.token(), &code1)
                .await
                .is_err());
        }
        let v =
            f.tf.verify_login(LoginContext::none(), ch2.token(), &code2)
                .await
                .unwrap();
        assert_eq!(v.method(), Some(Method::Email));
        assert!(
            f.tf.verify_login(LoginContext::none(), ch2.token(), &code2)
                .await
                .is_err(),
            "single use"
        );
    }

    /// A backup code logs in once, on any challenge; the count goes down.
    pub(crate) async fn login_with_backup_code(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (_, codes) = f.enroll_totp(&u).await;
        let ch = f.challenge(&u).await;
        let v =
            f.tf.verify_login(LoginContext::none(), ch.token(), &codes[3])
                .await
                .unwrap();
        assert_eq!(v.method(), Some(Method::BackupCode));
        assert_eq!(v.backup_codes_remaining(), 9);
        let ch = f.challenge(&u).await;
        assert!(matches!(
            f.tf.verify_login(LoginContext::none(), ch.token(), &codes[3])
                .await,
            Err(Error::InvalidCode { .. })
        ));
        assert_eq!(
            f.tf.account()
                .status(&u)
                .await
                .unwrap()
                .backup_codes_remaining,
            9
        );
    }

    /// Five attempts void a challenge; ten failures across challenges lock the user.
    pub(crate) async fn lockout(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, _) = f.enroll_totp(&u).await;
        let ch = f.challenge(&u).await;
        let bad = wrong(&f.totp(&secret));
        for remaining in (0..5).rev() {
            match f
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
        assert!(matches!(
            f.tf.verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
                .await,
            Err(Error::TooManyAttempts)
        ));
        // Five more failures on new challenges: ten in all, the user is locked.
        for _ in 0..5 {
            let ch = f.challenge(&u).await;
            let r =
                f.tf.verify_login(LoginContext::none(), ch.token(), "000000")
                    .await;
            assert!(matches!(r, Err(Error::InvalidCode { .. })), "{r:?}");
        }
        match f.tf.begin_login(LoginContext::none(), &u).await {
            Err(Error::Locked { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(900));
                f.clock.advance(retry_after);
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let ch = f.challenge(&u).await;
        let v =
            f.tf.verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
                .await
                .unwrap();
        assert_eq!(v.method(), Some(Method::Totp));
    }

    /// A TOTP code is accepted once per user: a replay on another challenge is refused, and of
    /// 8 concurrent submissions on 8 challenges exactly one succeeds.
    pub(crate) async fn replay(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, _) = f.enroll_totp(&u).await;
        let code = f.totp(&secret);
        let ch1 = f.challenge(&u).await;
        f.tf.verify_login(LoginContext::none(), ch1.token(), &code)
            .await
            .unwrap();
        let ch2 = f.challenge(&u).await;
        assert!(matches!(
            f.tf.verify_login(LoginContext::none(), ch2.token(), &code)
                .await,
            Err(Error::CodeReused)
        ));

        f.advance(30);
        let code = f.totp(&secret);
        let mut tokens = Vec::new();
        for _ in 0..8 {
            tokens.push(f.challenge(&u).await.token().clone());
        }
        let mut handles = Vec::new();
        for token in tokens {
            let (tf, code) = (f.tf.clone(), code.clone());
            handles.push(tokio::spawn(async move {
                tf.verify_login(LoginContext::none(), &token, &code).await
            }));
        }
        let mut ok = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::CodeReused | Error::Locked { .. }) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(ok, 1, "one acceptance of one TOTP code");
    }

    /// Regeneration voids the old set; disable needs the password and a code, and removes all.
    pub(crate) async fn regenerate_and_disable(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, old) = f.enroll_totp(&u).await;
        let new =
            f.tf.backup_codes()
                .regenerate(&u, &f.totp(&secret))
                .await
                .unwrap();
        assert_eq!(new.len(), 10);
        let ch = f.challenge(&u).await;
        assert!(
            f.tf.verify_login(LoginContext::none(), ch.token(), &old[0])
                .await
                .is_err(),
            "old set void"
        );
        let v =
            f.tf.verify_login(LoginContext::none(), ch.token(), new[0].expose())
                .await
                .unwrap();
        assert_eq!(v.backup_codes_remaining(), 9);
        f.advance(30);
        assert!(matches!(
            f.tf.account()
                .disable(&u, "wrong password", &f.totp(&secret))
                .await,
            Err(Error::InvalidPassword)
        ));
        assert!(
            f.tf.account().status(&u).await.unwrap().enabled,
            "nothing disabled"
        );
        f.tf.account()
            .disable(&u, PASSWORD, new[1].expose())
            .await
            .unwrap();
        let status = f.tf.account().status(&u).await.unwrap();
        assert!(!status.enabled);
        assert_eq!(status.backup_codes_remaining, 0);
        assert!(matches!(
            f.tf.begin_login(LoginContext::none(), &u).await.unwrap(),
            LoginStep::Complete(_)
        ));
    }

    every_store!(login_with_totp);
    every_store!(login_with_email_code);
    every_store!(login_with_backup_code);
    every_store!(lockout);
    every_store!(replay);
    every_store!(regenerate_and_disable);
}

/// Floods: 64 concurrent submissions of the right answer on one challenge.
mod floods {
    use super::*;

    /// Submits `code` 64 times at once on `ch`: the number of successes, and the failures
    /// charged to the user meanwhile.
    async fn flood(f: &AnyHarness, ch: &Challenge, code: &str) -> (usize, usize) {
        f.events.clear();
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (tf, token, code, barrier) = (
                f.tf.clone(),
                ch.token().clone(),
                code.to_owned(),
                barrier.clone(),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                tf.verify_login(LoginContext::none(), &token, &code).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                // A loser's refusal; whether it was charged shows in the events.
                Err(
                    Error::TooManyAttempts
                    | Error::InvalidChallenge
                    | Error::CodeReused
                    | Error::InvalidCode { .. }
                    | Error::Locked { .. },
                ) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        let charged = f
            .events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::CodeRejected { .. }))
            .count();
        (wins, charged)
    }

    /// 20 rounds of 64 concurrent right TOTP codes: exactly one success each round, and no
    /// loser is charged a failure.
    pub(crate) async fn right_totp_codes(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, _) = f.enroll_totp(&u).await;
        for round in 0..20 {
            f.advance(30);
            let ch = f.challenge(&u).await;
            let (wins, charged) = flood(&f, &ch, &f.totp(&secret)).await;
            assert_eq!((wins, charged), (1, 0), "round {round}");
        }
    }

    /// The same with the emailed code, and with one backup code: one success, one code spent.
    /// A backup code is redeemed in the enrolment store before the challenge is taken, so a
    /// loser that finds it spent while the winner has not yet settled is refused as a failure;
    /// the winner's pass then ends the run, so nothing charged outlives the round: after the
    /// last round the whole threshold of failures is still available.
    pub(crate) async fn right_email_and_backup_codes(stores: &Stores) {
        let f = Harness::on_stores(stores);
        let u = user();
        let (secret, codes) = f.enroll_totp(&u).await;
        f.enroll_email(&u, &format!("{u}@example.com")).await;
        for round in 0..5 {
            let ch = f.challenge(&u).await;
            let code = f.last_code(&format!("{u}@example.com"));
            assert_eq!(flood(&f, &ch, &code).await, (1, 0), "email round {round}");
            // Past the send window, so that the next challenge's code is sent.
            f.advance(901);
        }
        for (round, code) in codes.iter().take(3).enumerate() {
            let ch = f.challenge(&u).await;
            let (wins, _) = flood(&f, &ch, code).await;
            assert_eq!(wins, 1, "backup round {round}");
        }
        let status = f.tf.account().status(&u).await.unwrap();
        assert_eq!(status.backup_codes_remaining, 7, "one code spent per round");
        // The run is clear: nine wrong codes are evaluated, and so is the tenth.
        let threshold = f.tf.policy().lockout_threshold;
        let mut evaluated = 0;
        while evaluated < threshold {
            let ch = f.challenge(&u).await;
            loop {
                match f
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &wrong(&f.totp(&secret)))
                    .await
                {
                    Err(Error::InvalidCode { .. }) => evaluated += 1,
                    Err(Error::TooManyAttempts) => break,
                    other => panic!("after {evaluated} failures: {other:?}"),
                }
                if evaluated == threshold {
                    break;
                }
            }
        }
    }

    every_store!(right_totp_codes);
    every_store!(right_email_and_backup_codes);
}

/// Key rotation between the steps of every flow: a service on the rotated ring (the same stores
/// and clock) takes over mid-flow, and the old one after it, in both directions.
mod rotation {
    use super::*;

    fn rotated(old: &AnyHarness) -> AnyHarness {
        let next = Keyring::generate();
        old.rekeyed(old.keys.rotate_to(&next))
    }

    /// Nothing is lost: a TOTP setup, an open challenge, backup codes, a pending email code, an
    /// emailed login code, each made before the rotation, work after it.
    pub(crate) async fn nothing_is_lost(stores: &Stores) {
        let old = Harness::on_stores(stores);
        let new = rotated(&old);
        let u = user();
        let address = format!("{u}@example.com");
        let setup = old.tf.totp().start_setup(&u, &address).await.unwrap();
        let secret = setup.secret_base32().to_owned();
        let codes: Vec<String> = setup
            .backup_codes()
            .iter()
            .map(|c| c.expose().to_owned())
            .collect();
        new.tf
            .totp()
            .confirm_setup(&u, &new.totp(&secret))
            .await
            .unwrap();
        // Sealed before the rotation: the status names the old key, which must stay in the ring.
        assert_eq!(
            new.tf.account().status(&u).await.unwrap().totp_key_id,
            Some(old.keys.key_id())
        );
        new.advance(30);
        let ch = old.challenge(&u).await;
        let v = new
            .tf
            .verify_login(LoginContext::none(), ch.token(), &new.totp(&secret))
            .await
            .unwrap();
        assert_eq!(v.method(), Some(Method::Totp));
        // That TOTP check under the new ring re-sealed the secret: the old key seals nothing.
        assert_eq!(
            new.tf.account().status(&u).await.unwrap().totp_key_id,
            Some(new.keys.key_id())
        );
        let ch = old.challenge(&u).await;
        let v = new
            .tf
            .verify_login(LoginContext::none(), ch.token(), &codes[0])
            .await
            .unwrap();
        assert_eq!(
            (v.method(), v.backup_codes_remaining()),
            (Some(Method::BackupCode), 9)
        );
        let ch = new.challenge(&u).await;
        old.tf
            .verify_login(LoginContext::none(), ch.token(), &codes[1])
            .await
            .unwrap();
        old.tf.email().start_setup(&u, &address).await.unwrap();
        new.tf
            .email()
            .confirm_setup(&u, &old.last_code(&address))
            .await
            .unwrap();
        let ch = old.challenge(&u).await;
        new.tf
            .verify_login(LoginContext::none(), ch.token(), &old.last_code(&address))
            .await
            .unwrap();
        // Re-sealing on demand names the key that seals the secret.
        let after = new.tf.totp().reseal_secret(&u).await.unwrap().unwrap();
        assert_eq!(after, new.keys.key_id());
        new.advance(30);
        let ch = new.challenge(&u).await;
        new.tf
            .verify_login(LoginContext::none(), ch.token(), &new.totp(&secret))
            .await
            .unwrap();
    }

    /// Nothing re-opens: a used TOTP step, a used backup code, a lock and a spent challenge stay
    /// so across the rotation, either way round.
    pub(crate) async fn nothing_re_opens(stores: &Stores) {
        let old = Harness::on_stores(stores);
        let new = rotated(&old);
        let u = user();
        let (secret, codes) = old.enroll_totp(&u).await;
        let code = old.totp(&secret);
        let ch = old.challenge(&u).await;
        old.tf
            .verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap();
        let ch2 = new.challenge(&u).await;
        assert!(matches!(
            new.tf
                .verify_login(LoginContext::none(), ch2.token(), &code)
                .await,
            Err(Error::CodeReused)
        ));
        assert!(matches!(
            new.tf
                .verify_login(LoginContext::none(), ch.token(), &new.totp(&secret))
                .await,
            Err(Error::InvalidChallenge)
        ));
        let ch = new.challenge(&u).await;
        new.tf
            .verify_login(LoginContext::none(), ch.token(), &codes[0])
            .await
            .unwrap();
        let ch = old.challenge(&u).await;
        assert!(matches!(
            old.tf
                .verify_login(LoginContext::none(), ch.token(), &codes[0])
                .await,
            Err(Error::InvalidCode { .. })
        ));
        // A lock set before the rotation holds after it.
        let threshold = old.tf.policy().lockout_threshold;
        let mut failed = 1; // the spent backup code above
        while failed < threshold {
            let ch = old.challenge(&u).await;
            while failed < threshold {
                match old
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &wrong(&old.totp(&secret)))
                    .await
                {
                    Err(Error::InvalidCode { .. }) => failed += 1,
                    Err(Error::TooManyAttempts) => break,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(matches!(
            new.tf.begin_login(LoginContext::none(), &u).await,
            Err(Error::Locked { .. })
        ));
    }

    every_store!(nothing_is_lost);
    every_store!(nothing_re_opens);
}

/// Redis dies in the middle of a login: the right code is not accepted while it is down, the
/// login fails closed after it comes back empty, and the enrollment (in SQLite) is intact.
#[cfg(all(feature = "redis", feature = "sqlite"))]
#[test]
fn redis_stopped_mid_login_fails_closed_and_loses_no_enrollment() {
    let port = stores::dead_port();
    let Some(mut server) = stores::OwnRedis::start(port) else {
        return;
    };
    twofactor::store::conformance::run(
        "redis_stopped_mid_login_fails_closed_and_loses_no_enrollment",
        || async { Some(()) },
        |_| async move {
            let otp = Arc::new(server.connect().await);
            let sql = Arc::new(stores::sqlite_store().await.unwrap());
            let f = Harness::on(otp, sql);
            let u = user();
            let (secret, codes) = f.enroll_totp(&u).await;
            let ch = f.challenge(&u).await;

            server.kill();
            for code in [f.totp(&secret), codes[0].clone()] {
                match f
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
                    .await
                {
                    Err(e @ Error::Store(_)) => {
                        assert!(e.is_transient());
                        assert_eq!(e.http_status(), 503);
                    }
                    other => panic!("expected a store error, got {other:?}"),
                }
            }
            assert!(matches!(
                f.tf.begin_login(LoginContext::none(), &u).await,
                Err(Error::Store(_))
            ));
            // The enrollment does not live in Redis: status still answers, nothing was lost.
            let status = f.tf.account().status(&u).await.unwrap();
            assert!(status.enabled);
            assert_eq!(
                status.backup_codes_remaining, 10,
                "no backup code spent by a failed login"
            );

            let _back = stores::OwnRedis::start(port).unwrap();
            let mut outcome = None;
            for _ in 0..100 {
                match f
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &f.totp(&secret))
                    .await
                {
                    Err(Error::Store(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                    other => {
                        outcome = Some(other);
                        break;
                    }
                }
            }
            assert!(
                matches!(outcome, Some(Err(Error::InvalidChallenge))),
                "the challenge died with the server: {outcome:?}"
            );
            let ch = f.challenge(&u).await;
            let v =
                f.tf.verify_login(LoginContext::none(), ch.token(), &codes[0])
                    .await
                    .unwrap();
            assert_eq!(v.method(), Some(Method::BackupCode));
            assert_eq!(v.backup_codes_remaining(), 9);
        },
    );
}

/// Redis for both stores, killed (SIGKILL) after an enrolment and a redeemed backup code, then
/// started again. Without persistence the enrolment is gone, as the docs warn; with an
/// append-only file synced on every write (`appendfsync always`) nothing acknowledged is lost:
/// the factor is still enabled and the redeemed code stays spent.
#[cfg(feature = "redis")]
#[test]
fn redis_enrollments_survive_a_crash_only_with_persistence() {
    for durable in [false, true] {
        let port = stores::dead_port();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("twofactor-aof-{}", stores::random_word()));
        std::fs::create_dir_all(&dir).unwrap();
        let start = || {
            if durable {
                stores::OwnRedis::start_durable(port, &dir)
            } else {
                stores::OwnRedis::start(port)
            }
        };
        let Some(mut server) = start() else {
            return;
        };
        twofactor::store::conformance::run(
            "redis_enrollments_survive_a_crash_only_with_persistence",
            || async { Some(()) },
            |_| async move {
                let otp = server.connect().await;
                let f = Harness::on(Arc::new(otp.clone()), Arc::new(otp.enrollment_store()));
                let u = user();
                let (_secret, codes) = f.enroll_totp(&u).await;
                let ch = f.challenge(&u).await;
                let v =
                    f.tf.verify_login(LoginContext::none(), ch.token(), &codes[0])
                        .await
                        .unwrap();
                assert_eq!(v.backup_codes_remaining(), 9);

                server.kill();
                let back = start().unwrap();
                let otp = back.connect().await;
                let g = f.twin_on(Arc::new(otp.clone()), Arc::new(otp.enrollment_store()));
                let status = g.tf.account().status(&u).await.unwrap();
                if !durable {
                    assert!(
                        !status.enabled,
                        "a Redis without persistence forgets the enrolment"
                    );
                    assert_eq!(status.backup_codes_remaining, 0);
                    return;
                }
                assert!(status.enabled, "the enrolment survived the crash");
                assert_eq!(status.backup_codes_remaining, 9);
                let ch = g.challenge(&u).await;
                assert!(
                    g.tf.verify_login(LoginContext::none(), ch.token(), &codes[0])
                        .await
                        .is_err(),
                    "the redeemed code stays spent"
                );
                let v =
                    g.tf.verify_login(LoginContext::none(), ch.token(), &codes[1])
                        .await
                        .unwrap();
                assert_eq!(v.method(), Some(Method::BackupCode));
                assert_eq!(v.backup_codes_remaining(), 8);
            },
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
