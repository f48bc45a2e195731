//! Seams between flows that an outside review found open: what a response status tells, what a
//! recovery request tells, whose limit a stranger can exhaust, what counts as a fresh factor,
//! and what a step-up code or a trusted device may be used for.

use twofactor::Error;
use twofactor::LoginContext;

use crate::support::{wrong, Harness};

/// Every failure of the code step, as the flows produce them: one public status and one public
/// code, so a response never tells a malformed code from a wrong one or from a dead challenge.
#[tokio::test]
async fn every_code_step_failure_has_one_public_status_and_code() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let mut failures = Vec::new();

    let c = h.challenge("u1").await;
    let ctx = LoginContext::none();
    // Malformed, then wrong.
    failures.push(
        h.tf.verify_login(ctx, c.token(), "12ab!")
            .await
            .unwrap_err(),
    );
    let right = h.totp(&secret);
    failures.push(
        h.tf.verify_login(ctx, c.token(), &wrong(&right))
            .await
            .unwrap_err(),
    );
    // The right code passes; the same challenge again is gone, and the code is spent.
    h.tf.verify_login(ctx, c.token(), &right).await.unwrap();
    failures.push(h.tf.verify_login(ctx, c.token(), &right).await.unwrap_err());
    let c = h.challenge("u1").await;
    failures.push(h.tf.verify_login(ctx, c.token(), &right).await.unwrap_err());
    // An expired challenge.
    let c = h.challenge("u1").await;
    h.advance(3600);
    failures.push(
        h.tf.verify_login(ctx, c.token(), &h.totp(&secret))
            .await
            .unwrap_err(),
    );
    // A confirmation with nothing pending.
    failures.push(
        h.tf.email()
            .confirm_setup("u1", "123456")
            .await
            .unwrap_err(),
    );

    let seen: Vec<&str> = failures.iter().map(Error::code).collect();
    for expected in [
        "malformed_code",
        "invalid_code",
        "invalid_challenge",
        "code_reused",
    ] {
        assert!(
            seen.contains(&expected),
            "{expected} not produced: {seen:?}"
        );
    }
    failures.extend([Error::Expired, Error::NothingPending]);
    for e in &failures {
        assert_eq!(e.public_code(), "invalid_code", "{e:?}");
        assert_eq!(e.public_http_status(), 401, "{e:?}");
        assert_eq!(e.public_message(), failures[0].public_message(), "{e:?}");
    }
    // Outside the code step, the public status is the status.
    for e in [
        Error::TooManyAttempts,
        Error::Locked {
            retry_after: std::time::Duration::from_secs(60),
        },
        Error::ReauthRequired,
        Error::InvalidPassword,
        Error::NotEnrolled,
        Error::InvalidInput("x"),
        Error::Internal("x"),
    ] {
        assert_eq!(e.public_http_status(), e.http_status(), "{e:?}");
        assert_eq!(e.public_code(), e.code(), "{e:?}");
    }
}

fn checks(h: &Harness) -> u64 {
    h.password_checks.load(std::sync::atomic::Ordering::SeqCst)
}

/// A recovery request checks the password once whether or not the account has a factor, and
/// a wrong password gets the same answer either way: without the password, nobody learns
/// whether an account has two-factor authentication. Only the password's holder, who could
/// sign in and see it anyway, is told that there is nothing to recover.
#[tokio::test]
async fn a_recovery_request_tells_no_stranger_whether_an_account_has_a_factor() {
    let h = Harness::new();
    h.enroll_totp("on").await;
    let mut answers = Vec::new();
    for user in ["on", "off"] {
        let before = checks(&h);
        let e = h.tf.recovery().request(user, "guess").await.unwrap_err();
        assert_eq!(
            checks(&h) - before,
            1,
            "{user}: the password is checked once"
        );
        answers.push(e);
    }
    assert!(
        matches!(answers[0], Error::InvalidPassword),
        "{:?}",
        answers[0]
    );
    assert_eq!(format!("{:?}", answers[0]), format!("{:?}", answers[1]));
    assert_eq!(answers[0].to_string(), answers[1].to_string());

    // The limit is reached alike.
    for user in ["on", "off"] {
        let mut last = None;
        for _ in 0..10 {
            last = Some(h.tf.recovery().request(user, "guess").await.unwrap_err());
        }
        assert!(
            matches!(last, Some(Error::Locked { .. })),
            "{user}: {last:?}"
        );
    }

    // The real user of an account without a factor learns, with the password, that there is
    // nothing to recover; no recovery is scheduled.
    let h = Harness::new();
    let before = checks(&h);
    let e =
        h.tf.recovery()
            .request("off", crate::support::PASSWORD)
            .await;
    assert!(matches!(e, Err(Error::NotEnrolled)), "{e:?}");
    assert_eq!(checks(&h) - before, 1);
    assert!(h
        .tf
        .account()
        .status("off")
        .await
        .unwrap()
        .recovery_pending_until
        .is_none());
}

/// Recovery requests need no session: a stranger who tries passwords there must not lock the
/// signed-in owner's password limit at `disable`. They are limited on a counter of their own.
#[tokio::test]
async fn wrong_recovery_requests_do_not_lock_the_owners_disable() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let mut answers = Vec::new();
    for _ in 0..12 {
        answers.push(h.tf.recovery().request("u1", "guess").await.unwrap_err());
    }
    assert!(
        answers[..10]
            .iter()
            .all(|e| matches!(e, Error::InvalidPassword)),
        "{answers:?}"
    );
    assert!(
        answers[10..]
            .iter()
            .all(|e| matches!(e, Error::Locked { .. })),
        "the recovery requests are limited on their own: {answers:?}"
    );
    // Even the right password is refused there now, without being checked.
    let before = checks(&h);
    let e =
        h.tf.recovery()
            .request("u1", crate::support::PASSWORD)
            .await;
    assert!(matches!(e, Err(Error::Locked { .. })), "{e:?}");
    assert_eq!(checks(&h), before);

    // The owner, signed in, turns 2FA off with the password and a code.
    h.tf.account()
        .disable("u1", crate::support::PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

/// A registration code proves an address, not a factor: a session that verifies an address it
/// controls must not gain the re-authentication window, and so cannot enrol that mailbox (or
/// anything else) as a factor without a real factor check.
#[tokio::test]
async fn a_registration_code_opens_no_reauthentication_window() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.advance(3600);
    let before = h.tf.account().status("u1").await.unwrap().last_verified_at;
    assert!(before.is_some());

    h.tf.email()
        .send_verification_code("u1", "mine@example.com")
        .await
        .unwrap();
    let code = h.last_code("mine@example.com");
    let proven = h.tf.email().verify_registration_code("u1", &code).await;
    assert_eq!(proven.unwrap(), "mine@example.com");

    let e = h.tf.email().start_setup("u1", "mine@example.com").await;
    assert!(matches!(e, Err(Error::ReauthRequired)), "{e:?}");
    let e = h.tf.sms().start_setup("u1", "+49 151 12345678").await;
    assert!(matches!(e, Err(Error::ReauthRequired)), "{e:?}");
    assert_eq!(
        h.tf.account().status("u1").await.unwrap().last_verified_at,
        before,
        "an address check is not a verification"
    );

    // A real factor check opens it.
    h.tf.account()
        .reauthenticate("u1", &h.totp(&secret))
        .await
        .unwrap();
    h.tf.email()
        .start_setup("u1", "mine@example.com")
        .await
        .unwrap();
}

/// Nor does a registration code end the run of failed codes that guards the login: a session
/// holding a mailbox cannot buy more guesses at the user's factor with it.
#[tokio::test]
async fn a_registration_code_does_not_end_the_run_of_failures() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.advance(3600);
    let wrong_code = wrong(&h.totp(&secret));
    let mut failed = 0;
    while failed < 9 {
        let c = h.challenge("u1").await;
        for _ in 0..4 {
            if failed == 9 {
                break;
            }
            let e =
                h.tf.verify_login(LoginContext::none(), c.token(), &wrong_code)
                    .await
                    .unwrap_err();
            assert!(matches!(e, Error::InvalidCode { .. }), "{e:?}");
            failed += 1;
        }
    }
    h.tf.email()
        .send_verification_code("u1", "mine@example.com")
        .await
        .unwrap();
    let code = h.last_code("mine@example.com");
    h.tf.email()
        .verify_registration_code("u1", &code)
        .await
        .unwrap();
    // The tenth failure locks, as it would have without the registration code.
    let c = h.challenge("u1").await;
    let e =
        h.tf.verify_login(LoginContext::none(), c.token(), &wrong_code)
            .await
            .unwrap_err();
    assert!(matches!(e, Error::InvalidCode { .. }), "{e:?}");
    let locked = h.tf.begin_login(LoginContext::none(), "u1").await;
    assert!(matches!(locked, Err(Error::Locked { .. })), "{locked:?}");
}

/// A login answered with a security key is a second-factor pass like a code: the browser it
/// happened in may be trusted.
#[cfg(feature = "webauthn")]
#[tokio::test]
async fn a_security_key_login_may_trust_its_device() {
    use crate::support::authenticator::{SoftKey, ORIGIN, RP_ID};
    use twofactor::{security_key::SecurityKeyPolicy, LoginStep, Method, Policy};

    let mut policy = Policy::default();
    policy.security_keys = Some(SecurityKeyPolicy::new(RP_ID, ORIGIN));
    let h = Harness::with_policy(policy);
    h.enroll_totp("u1").await;
    let mut key = SoftKey::new();
    let options =
        h.tf.security_keys()
            .start_registration("u1", "Alice Example")
            .await
            .unwrap();
    let response = key.create(options.as_json()).await;
    h.tf.security_keys()
        .finish_registration("u1", &response, "YubiKey")
        .await
        .unwrap();
    h.advance(3600);

    let c = h.challenge("u1").await;
    let options = c.security_key().unwrap().as_json().clone();
    let assertion = key.get(&options).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::SecurityKey));
    let trust = h.tf.devices().trust(&v, "Laptop", None).await.unwrap();

    h.advance(3600);
    let ctx = LoginContext::new().device(trust.token.clone());
    let step = h.tf.begin_login(&ctx, "u1").await.unwrap();
    assert!(
        matches!(&step, LoginStep::Complete(v) if v.method() == Some(Method::TrustedDevice)),
        "{step:?}"
    );
    // A stale proof from a key is refused like any other.
    let e = h.tf.devices().trust(&v, "Laptop", None).await;
    assert!(matches!(e, Err(Error::ReauthRequired)), "{e:?}");
}

/// A pending TOTP setup lives at most an hour, whatever the policy asks.
#[test]
fn the_totp_setup_ttl_is_capped() {
    use std::time::Duration;
    use twofactor::Policy;
    for refused in [
        Duration::from_secs(3601),
        Duration::from_secs(365 * 86_400),
        Duration::MAX,
        Duration::ZERO,
    ] {
        let mut p = Policy::default();
        p.totp_setup_ttl = refused;
        let e = p.validate().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{refused:?}: {e:?}");
    }
    let mut p = Policy::default();
    p.totp_setup_ttl = Duration::from_secs(3600);
    p.validate().unwrap();
}

/// A TOTP setup started while the account had no factor, confirmed after a factor was added,
/// needs a fresh factor at confirmation, as starting it would have then.
#[tokio::test]
async fn a_pending_totp_setup_needs_a_fresh_factor_once_the_account_has_one() {
    let h = Harness::new();
    let setup =
        h.tf.totp()
            .start_setup("u1", "u1@example.com")
            .await
            .unwrap();
    let secret = setup.secret_base32().to_owned();
    h.enroll_email("u1", "u1@example.com").await;
    h.advance(6 * 60);

    let e = h.tf.totp().confirm_setup("u1", &h.totp(&secret)).await;
    assert!(matches!(e, Err(Error::ReauthRequired)), "{e:?}");
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.methods.contains(&twofactor::Method::Totp));

    // A fresh factor (the email factor's step-up code) lets the same setup be confirmed.
    h.tf.account()
        .send_step_up_code("u1", twofactor::mail::SecurityAction::AddFactor)
        .await
        .unwrap();
    let code = h.last_code("u1@example.com");
    h.tf.account().reauthenticate("u1", &code).await.unwrap();
    h.tf.totp()
        .confirm_setup("u1", &h.totp(&secret))
        .await
        .unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.methods.contains(&twofactor::Method::Totp));
}

/// A device's last use is written coarsely: once, then again only when the stored time is an
/// hour old. What `devices().list` shows follows.
#[tokio::test]
async fn a_device_use_is_recorded_at_most_hourly() {
    use twofactor::LoginStep;
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let c = h.challenge("u1").await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    let trust = h.tf.devices().trust(&v, "Laptop", None).await.unwrap();
    let ctx = LoginContext::new().device(trust.token.clone());
    let login = || async {
        let step = h.tf.begin_login(&ctx, "u1").await.unwrap();
        assert!(matches!(step, LoginStep::Complete(_)), "{step:?}");
    };
    let last_used = || async {
        h.tf.devices().list("u1").await.unwrap()[0]
            .last_used_at
            .map(|t| t.as_unix_secs())
    };
    h.advance(60);
    login().await;
    let first = h.now();
    assert_eq!(last_used().await, Some(first));
    h.advance(3599);
    login().await;
    assert_eq!(
        last_used().await,
        Some(first),
        "within the hour: not rewritten"
    );
    h.advance(1);
    login().await;
    assert_eq!(last_used().await, Some(h.now()));
}

/// 64 concurrent logins with one valid device token all complete, on every store; once the
/// device is revoked, none does.
#[cfg(feature = "test-util")]
mod device_logins {
    use std::sync::Arc;
    use std::time::Duration;

    use twofactor::clock::{Clock, Timestamp};
    use twofactor::store::{EnrollmentStore, OtpStore};
    use twofactor::testing::{ManualClock, RecordingMailer};
    use twofactor::totp::{totp_code, TotpParams, TotpSecret};
    use twofactor::{Keyring, LoginContext, LoginStep, Method, TwoFactorService};

    #[allow(unused_imports)]
    use crate::support::stores;
    use crate::support::{race, PASSWORD, START};

    type Stores = (Arc<dyn OtpStore>, Arc<dyn EnrollmentStore>);

    const N: usize = 64;

    async fn concurrent_device_logins(name: &str, stores: &Stores) {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        let tf = TwoFactorService::builder()
            .issuer("Acme")
            .keys(Keyring::generate())
            .otp_store(stores.0.clone())
            .enrollments(stores.1.clone())
            .mailer(RecordingMailer::new())
            .clock(clock.clone())
            .password_verifier(|_u: &str, p: &str| p == PASSWORD)
            .build()
            .unwrap();
        let code = |secret: &TotpSecret| {
            totp_code(
                secret.as_bytes(),
                TotpParams::default(),
                clock.now().as_unix_secs(),
            )
        };
        let user = format!("device-race-{}", stores::random_word());
        let setup = tf.totp().start_setup(&user, "x").await.unwrap();
        let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
        tf.totp()
            .confirm_setup(&user, &code(&secret))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        let LoginStep::Challenge(c) = tf.begin_login(LoginContext::none(), &user).await.unwrap()
        else {
            panic!("expected a challenge");
        };
        let v = tf
            .verify_login(LoginContext::none(), c.token(), &code(&secret))
            .await
            .unwrap();
        let trust = tf.devices().trust(&v, "Laptop", None).await.unwrap();
        clock.advance(Duration::from_secs(60));

        let logins = || {
            race(N, |_| {
                let tf = tf.clone();
                let user = user.clone();
                let ctx = LoginContext::new().device(trust.token.clone());
                async move { tf.begin_login(&ctx, &user).await }
            })
        };
        let results = logins().await;
        let completed = results
            .iter()
            .filter(|r| {
                matches!(r, Ok(LoginStep::Complete(v)) if v.method() == Some(Method::TrustedDevice))
            })
            .count();
        let mut errors = std::collections::BTreeMap::<String, usize>::new();
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            *errors.entry(format!("{e:?}")).or_default() += 1;
        }
        eprintln!("{name}: {completed} of {N} concurrent device logins completed");
        assert_eq!(completed, N, "{name}: {errors:?}");
        let listed = tf.devices().list(&user).await.unwrap();
        assert_eq!(
            listed[0].last_used_at.map(|t| t.as_unix_secs()),
            Some(clock.now().as_unix_secs()),
            "{name}: the use is recorded"
        );

        // Revoked, the device lets no one in, however many try at once.
        assert!(tf.devices().revoke(&user, &trust.device.id).await.unwrap());
        let results = logins().await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(LoginStep::Challenge(_)))),
            "{name}: {results:?}"
        );
    }

    fn run<F: std::future::Future<Output = Option<Stores>>>(name: &str, make: impl FnOnce() -> F) {
        let label = name.to_owned();
        twofactor::store::conformance::run(name, make, |s: Arc<Stores>| async move {
            concurrent_device_logins(&label, &s).await
        });
    }

    #[test]
    fn memory() {
        run("memory", || async {
            Some((
                Arc::new(twofactor::store::MemoryOtpStore::new()) as Arc<dyn OtpStore>,
                Arc::new(twofactor::store::MemoryEnrollmentStore::new())
                    as Arc<dyn EnrollmentStore>,
            ))
        });
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        run("postgres", || async {
            let sql = Arc::new(stores::postgres_store().await?);
            Some((
                sql.clone() as Arc<dyn OtpStore>,
                sql as Arc<dyn EnrollmentStore>,
            ))
        });
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite() {
        run("sqlite", || async {
            let sql = Arc::new(stores::sqlite_store().await?);
            Some((
                sql.clone() as Arc<dyn OtpStore>,
                sql as Arc<dyn EnrollmentStore>,
            ))
        });
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_with_memory_enrolments() {
        run("redis with memory enrolments", || async {
            let otp = stores::redis_store().await?;
            Some((
                Arc::new(otp) as Arc<dyn OtpStore>,
                Arc::new(twofactor::store::MemoryEnrollmentStore::new())
                    as Arc<dyn EnrollmentStore>,
            ))
        });
    }

    #[cfg(all(feature = "redis", feature = "postgres"))]
    #[test]
    fn redis_with_postgres_enrolments() {
        run("redis with postgres enrolments", || async {
            let otp = stores::redis_store().await?;
            let sql = stores::postgres_store().await?;
            Some((
                Arc::new(otp) as Arc<dyn OtpStore>,
                Arc::new(sql) as Arc<dyn EnrollmentStore>,
            ))
        });
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_for_both() {
        run("redis for both", || async {
            let otp = stores::redis_store().await?;
            let enrollments = otp.enrollment_store();
            Some((
                Arc::new(otp) as Arc<dyn OtpStore>,
                Arc::new(enrollments) as Arc<dyn EnrollmentStore>,
            ))
        });
    }
}

/// A step-up code confirms the change its message names, and no other: a code mailed to
/// regenerate the backup codes does not turn two-factor authentication off, and a refused use is
/// a counted failure. `reauthenticate`, which only proves the factor, takes a code of any action.
#[tokio::test]
async fn a_step_up_code_is_bound_to_its_action() {
    use twofactor::events::Event;
    use twofactor::mail::SecurityAction;
    const ADDRESS: &str = "u1@example.com";
    let h = Harness::new();
    h.enroll_totp("u1").await;
    h.enroll_email("u1", ADDRESS).await;
    h.advance(3600);
    let rejected = |h: &Harness| {
        h.events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::CodeRejected { user } if user == "u1"))
            .count()
    };
    let h = &h;
    let send = |action| async move {
        h.tf.account()
            .send_step_up_code("u1", action)
            .await
            .unwrap();
        // Past the cooldown, and at most five sends in any 15 minutes.
        h.advance(181);
        h.last_code(ADDRESS)
    };

    // Mailed for a regeneration: refused by disable, and counted.
    let code = send(SecurityAction::RegenerateBackupCodes).await;
    let before = rejected(h);
    let e =
        h.tf.account()
            .disable("u1", crate::support::PASSWORD, &code)
            .await;
    assert!(matches!(e, Err(Error::InvalidCode { .. })), "{e:?}");
    assert_eq!(
        rejected(h),
        before + 1,
        "a code for another action is a failure"
    );
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
    // It still does what it was sent for.
    h.tf.backup_codes().regenerate("u1", &code).await.unwrap();

    // Mailed to turn 2FA off: no regeneration with it.
    let code = send(SecurityAction::DisableTwoFactor).await;
    let e = h.tf.backup_codes().regenerate("u1", &code).await;
    assert!(matches!(e, Err(Error::InvalidCode { .. })), "{e:?}");

    // Mailed to add a factor: neither.
    let code = send(SecurityAction::AddFactor).await;
    let e = h.tf.backup_codes().regenerate("u1", &code).await;
    assert!(matches!(e, Err(Error::InvalidCode { .. })), "{e:?}");
    let e =
        h.tf.account()
            .disable("u1", crate::support::PASSWORD, &code)
            .await;
    assert!(matches!(e, Err(Error::InvalidCode { .. })), "{e:?}");
    assert!(h.tf.account().status("u1").await.unwrap().enabled);

    // reauthenticate takes a code of any action, as before.
    for action in [
        SecurityAction::AddFactor,
        SecurityAction::RegenerateBackupCodes,
        SecurityAction::DisableTwoFactor,
    ] {
        let code = send(action).await;
        h.tf.account().reauthenticate("u1", &code).await.unwrap();
    }
    // And disable takes its own.
    let code = send(SecurityAction::DisableTwoFactor).await;
    h.tf.account()
        .disable("u1", crate::support::PASSWORD, &code)
        .await
        .unwrap();
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}
