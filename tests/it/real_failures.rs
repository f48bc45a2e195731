//! Real server failures, not simulations, on servers the tests start themselves: a
//! `redis-server` stalled with `SIGSTOP`; a PostgreSQL cluster of its own (`initdb` and
//! `pg_ctl` on a temporary data directory) stopped mid-login and started again; and a TCP proxy
//! that cuts the connection after a write was forwarded, so the client cannot know whether it
//! happened. Each gives a typed, transient store error and never a wrongful success; once the
//! server is back a retry of the same call with the same code ends in one of the documented
//! outcomes (`Verified`, or `InvalidChallenge` when the earlier attempt consumed the challenge;
//! `AlreadyEnrolled` for a confirmed setup), with no code consumed twice and no enrolment lost.
//! (A Redis killed mid-login is in `store_flows`.)

use std::sync::Arc;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    error::StoreErrorKind, store::EnrollmentStore, store::OtpStore, Challenge, Error, Method,
    Verified,
};

use crate::support::proxy::{Cut, Proxy};
use crate::support::stores::{self, runtime};
use crate::support::{fresh_user, retry, Harness};

fn user() -> String {
    fresh_user("failure")
}

/// The store error of a failed step, which must be transient and never a success.
fn transient_kind<T: std::fmt::Debug>(outcome: Result<T, Error>) -> StoreErrorKind {
    match outcome {
        Err(Error::Store(e)) => {
            assert!(e.is_transient(), "{e}");
            e.kind()
        }
        other => panic!("expected a transient store error, got {other:?}"),
    }
}

/// After a login passed with `code` on `ch`: the token is spent, and the code's step is spent
/// on any other challenge too.
async fn spent_once<O: OtpStore + ?Sized, E: EnrollmentStore + ?Sized>(
    svc: &Harness<O, E>,
    user: &str,
    ch: &Challenge,
    code: &str,
) {
    assert!(
        matches!(
            svc.tf
                .verify_login(LoginContext::none(), ch.token(), code)
                .await,
            Err(Error::InvalidChallenge)
        ),
        "a consumed challenge never passes twice"
    );
    let again = svc.challenge_retrying(user).await;
    assert!(
        matches!(
            svc.tf
                .verify_login(LoginContext::none(), again.token(), code)
                .await,
            Err(Error::CodeReused)
        ),
        "the code's step was recorded once"
    );
}

/// A retry after an unknown outcome: `Verified` when the first try did not land, else
/// `InvalidChallenge` (the challenge was consumed by the first try); never anything else.
fn settled(outcome: &Result<Verified, Error>) -> bool {
    match outcome {
        Ok(v) => {
            assert_eq!(v.method(), Some(Method::Totp));
            false
        }
        Err(Error::InvalidChallenge) => true,
        other => panic!("a retry must verify or report the challenge consumed: {other:?}"),
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use twofactor::{store::MemoryEnrollmentStore, store::RedisOtpStore};

    /// A store on the Redis (or the proxy) at `port`, with patient timeouts: a cut connection
    /// fails its call at once, and a slow answer is waited for.
    async fn via(port: u16) -> RedisOtpStore {
        stores::wait_for(&format!("a Redis on port {port}"), || async {
            RedisOtpStore::builder(format!("redis://127.0.0.1:{port}"))
                .connect_timeout(stores::PATIENT)
                .response_timeout(stores::PATIENT)
                .reconnect_attempts(1)
                .connect()
                .await
                .ok()
        })
        .await
    }

    /// `SIGSTOP` mid-login: the step times out (typed `Timeout`, transient) and passes nothing;
    /// after `SIGCONT` the same code verifies once, and only once. The calls made while the
    /// server is stopped go through a second instance whose store handle times out after
    /// [`stores::SHORT`]; the others (the retry included), through one with patient timeouts,
    /// which a loaded machine does not make time out.
    #[test]
    fn stalled_redis_times_out_then_the_same_code_verifies_once() {
        let port = stores::dead_port();
        let Some(server) = stores::OwnRedis::start(port) else {
            return;
        };
        runtime().block_on(async {
            let store = server.connect().await;
            let svc = Harness::on(Arc::new(store), Arc::new(MemoryEnrollmentStore::new()));
            let quick = svc.twin_on(
                Arc::new(server.connect_timing_out_after(stores::SHORT).await),
                svc.enrollments.clone(),
            );
            let u = user();
            let (secret, _) = svc.enroll_totp(&u).await;
            let ch = svc.challenge_retrying(&u).await;
            let code = svc.totp(&secret);

            server.signal("STOP");
            let kind = transient_kind(
                quick
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
                    .await,
            );
            eprintln!("redis SIGSTOP: verify_login -> store error of kind {kind:?}");
            assert_eq!(kind, StoreErrorKind::Timeout);
            assert_eq!(
                transient_kind(quick.tf.begin_login(LoginContext::none(), &u).await),
                StoreErrorKind::Timeout
            );
            server.signal("CONT");

            let (outcome, transient) =
                retry(|| svc.tf.verify_login(LoginContext::none(), ch.token(), &code)).await;
            eprintln!("redis SIGCONT: retry -> {outcome:?} after {transient} transient errors");
            assert!(
                !settled(&outcome),
                "the stalled try never reached its settle step"
            );
            spent_once(&svc, &u, &ch, &code).await;
        });
    }

    /// A proxy cuts the connection at the settle step of `verify_login` (the script that takes
    /// the challenge and records the step): after forwarding it, and before. Each time the
    /// client sees a transient error; a retry with the same code gives `InvalidChallenge`
    /// when the write landed and `Verified` when it did not; the code is consumed once.
    #[test]
    fn cut_at_settle_retry_verifies_or_reports_consumed() {
        let port = stores::dead_port();
        let Some(_server) = stores::OwnRedis::start(port) else {
            return;
        };
        runtime().block_on(async {
            let _wait = via(port).await;
            let proxy = Proxy::start(port);
            let svc = Harness::on(
                Arc::new(via(proxy.port()).await),
                Arc::new(MemoryEnrollmentStore::new()),
            );
            let u = user();
            let (secret, _) = svc.enroll_totp(&u).await;
            // One whole login first, so that the scripts are loaded on the server.
            let ch = svc.challenge_retrying(&u).await;
            svc.tf
                .verify_login(LoginContext::none(), ch.token(), &svc.totp(&secret))
                .await
                .unwrap();

            for (cut, landed) in [(Cut::AfterForward, true), (Cut::BeforeForward, false)] {
                svc.advance(30);
                let ch = svc.challenge_retrying(&u).await;
                let code = svc.totp(&secret);
                // The second script of verify_login is the settle step.
                proxy.arm("EVALSHA", 1, 0, cut);
                let first = svc
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
                    .await;
                assert!(!proxy.armed(), "the cut fired");
                let kind = transient_kind(first);
                let (outcome, transient) =
                    retry(|| svc.tf.verify_login(LoginContext::none(), ch.token(), &code)).await;
                eprintln!(
                    "redis proxy cut {cut:?} settle: {kind:?}; retry -> {outcome:?} \
                     after {transient} transient errors"
                );
                assert_eq!(settled(&outcome), landed);
                spent_once(&svc, &u, &ch, &code).await;
            }
            assert_eq!(proxy.cuts(), 2);
        });
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use stores::OwnPostgres;
    use twofactor::store::SqlStore;

    /// A migrated store on the PostgreSQL at `url` whose pool waits up to `acquire` for a
    /// connection: [`stores::PATIENT`] for calls that must succeed, [`stores::SHORT`] for a
    /// handle whose calls must fail while the server is down (the pool keeps retrying a refused
    /// connection until then).
    async fn sql(url: String, connections: u32, acquire: Duration) -> Arc<SqlStore> {
        let store = stores::wait_for("the test's PostgreSQL accepts a connection", || async {
            SqlStore::builder(url.clone())
                .max_connections(connections)
                .acquire_timeout(acquire)
                .connect()
                .await
                .ok()
        })
        .await;
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    /// `pg_ctl stop -m immediate` mid-login: transient errors, nothing passes; once started
    /// again the challenge (durable) verifies with the same code, once.
    #[test]
    fn postgres_stopped_mid_login_fails_closed_and_resumes() {
        let Some(pg) = OwnPostgres::start() else {
            return;
        };
        runtime().block_on(async {
            let store = sql(pg.url_via(pg.port()), 4, stores::PATIENT).await;
            let svc = Harness::on(store.clone(), store.clone());
            // The calls made while the server is down, on a pool that gives up after SHORT.
            let down = sql(pg.url_via(pg.port()), 4, stores::SHORT).await;
            let quick = svc.twin_on(down.clone(), down);
            let u = user();
            let (secret, codes) = svc.enroll_totp(&u).await;
            let ch = svc.challenge_retrying(&u).await;
            let code = svc.totp(&secret);

            pg.stop_immediate();
            let kind = transient_kind(
                quick
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
                    .await,
            );
            eprintln!("postgres stopped: verify_login -> store error of kind {kind:?}");
            for c in [code.clone(), codes[0].clone()] {
                transient_kind(
                    quick
                        .tf
                        .verify_login(LoginContext::none(), ch.token(), &c)
                        .await,
                );
            }
            transient_kind(quick.tf.begin_login(LoginContext::none(), &u).await);
            transient_kind(quick.tf.account().status(&u).await);

            pg.start_again();
            let (outcome, transient) =
                retry(|| svc.tf.verify_login(LoginContext::none(), ch.token(), &code)).await;
            eprintln!(
                "postgres restarted: retry -> {outcome:?} after {transient} transient errors"
            );
            assert!(!settled(&outcome), "the challenge outlived the restart");
            spent_once(&svc, &u, &ch, &code).await;
            let status = svc.tf.account().status(&u).await.unwrap();
            assert!(status.enabled);
            assert_eq!(status.backup_codes_remaining, 10, "no backup code spent");
        });
    }

    /// `SIGSTOP` on every process of the cluster mid-login. `SqlStore` has no timeout on a
    /// statement already sent, so the host bounds the call (`tokio::time::timeout`, as the
    /// stores page of the manual says) and the call is dropped; after `SIGCONT` the retry with the same code ends
    /// as documented, and the code is consumed once.
    #[test]
    fn postgres_stalled_by_sigstop_under_a_host_timeout_then_resumes() {
        let Some(pg) = OwnPostgres::start() else {
            return;
        };
        runtime().block_on(async {
            let store = sql(pg.url_via(pg.port()), 4, stores::PATIENT).await;
            let svc = Harness::on(store.clone(), store.clone());
            let u = user();
            let (secret, _) = svc.enroll_totp(&u).await;
            let ch = svc.challenge_retrying(&u).await;
            let code = svc.totp(&secret);

            let pids = pg.pids();
            for pid in &pids {
                stores::send_signal(*pid, "STOP");
            }
            let stalled = tokio::time::timeout(
                stores::SHORT * 2,
                svc.tf.verify_login(LoginContext::none(), ch.token(), &code),
            )
            .await;
            for pid in &pids {
                stores::send_signal(*pid, "CONT");
            }
            assert!(stalled.is_err(), "a stalled database answered: {stalled:?}");
            let (outcome, transient) =
                retry(|| svc.tf.verify_login(LoginContext::none(), ch.token(), &code)).await;
            eprintln!(
                "postgres SIGSTOP ({} processes): the host's timeout fired; after SIGCONT, retry \
                 -> {outcome:?} after {transient} transient errors",
                pids.len()
            );
            settled(&outcome);
            spent_once(&svc, &u, &ch, &code).await;
        });
    }

    /// A proxy cuts the connection after the call of `verify_login`'s settle step (the
    /// function that takes the challenge and records the step) was forwarded: transient error;
    /// the retry reports the challenge consumed; the code is consumed once.
    #[test]
    fn postgres_cut_after_settle_retry_reports_consumed() {
        let Some(pg) = OwnPostgres::start() else {
            return;
        };
        runtime().block_on(async {
            let direct = sql(pg.url_via(pg.port()), 2, stores::PATIENT).await;
            let svc = Harness::on(direct.clone(), direct);
            let u = user();
            let (secret, _) = svc.enroll_totp(&u).await;
            let ch = svc.challenge_retrying(&u).await;
            let code = svc.totp(&secret);
            // A second instance on a fresh connection through the proxy: its first settle call
            // is prepared first (its text), then bound and run: the cut falls after the run.
            let proxy = Proxy::start(pg.port());
            let proxied = sql(pg.url_via(proxy.port()), 1, stores::PATIENT).await;
            let other = svc.twin_on(proxied.clone(), proxied);
            proxy.arm("twofactor_settle", 0, 1, Cut::AfterForward);
            let kind = transient_kind(
                other
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
                    .await,
            );
            assert!(!proxy.armed(), "the cut fired");
            let (outcome, transient) = retry(|| {
                other
                    .tf
                    .verify_login(LoginContext::none(), ch.token(), &code)
            })
            .await;
            eprintln!(
                "postgres proxy cut after settle: {kind:?}; retry -> {outcome:?} \
                 after {transient} transient errors"
            );
            assert!(settled(&outcome), "the settle call had committed");
            spent_once(&other, &u, &ch, &code).await;
        });
    }

    /// A proxy cuts the connection after the enrolment update of `confirm_totp_setup` was
    /// forwarded: transient error; the retry with the same code answers `AlreadyEnrolled`, and
    /// the factor and the ten backup codes shown at setup are all there.
    #[test]
    fn postgres_cut_after_enrolment_write_loses_nothing() {
        let Some(pg) = OwnPostgres::start() else {
            return;
        };
        runtime().block_on(async {
            let proxy = Proxy::start(pg.port());
            let store = sql(pg.url_via(proxy.port()), 1, stores::PATIENT).await;
            let svc = Harness::on(store.clone(), store.clone());
            let u = user();
            let (secret, codes) = svc.start_totp_setup(&u).await;
            let code = svc.totp(&secret);
            // The statement is prepared first (its text), then bound and run: cut after the run.
            proxy.arm("SET record = $2, revision", 0, 1, Cut::AfterForward);
            let kind = transient_kind(svc.tf.totp().confirm_setup(&u, &code).await);
            assert!(!proxy.armed(), "the cut fired");
            let (outcome, transient) = retry(|| svc.tf.totp().confirm_setup(&u, &code)).await;
            eprintln!(
                "postgres proxy cut after the enrolment update: {kind:?}; retry -> {outcome:?} \
                 after {transient} transient errors"
            );
            assert!(
                matches!(outcome, Err(Error::AlreadyEnrolled)),
                "the first confirmation landed: {outcome:?}"
            );
            let status = svc.tf.account().status(&u).await.unwrap();
            assert!(status.enabled && status.totp_confirmed_at.is_some());
            assert_eq!(status.backup_codes_remaining, 10);
            // The factor works: a backup code shown at setup, then the next TOTP step.
            let ch = svc.challenge_retrying(&u).await;
            let v = svc
                .tf
                .verify_login(LoginContext::none(), ch.token(), &codes[3])
                .await
                .unwrap();
            assert_eq!(v.method(), Some(Method::BackupCode));
            svc.advance(30);
            let ch = svc.challenge_retrying(&u).await;
            let v = svc
                .tf
                .verify_login(LoginContext::none(), ch.token(), &svc.totp(&secret))
                .await
                .unwrap();
            assert_eq!(v.method(), Some(Method::Totp));
        });
    }
}
