//! Tests of the SQL store's own parts, on SQLite (a file of its own) and on PostgreSQL when
//! `TWOFACTOR_TEST_POSTGRES_URL` is set (a schema of its own, dropped afterwards): the composite
//! operations of both backends against each other over random sequences, the enrolment
//! composites, and the migrations applied on top of version 1.
//!
//! Without the URL, the PostgreSQL tests (and the PostgreSQL half of the tests that run on both
//! backends) skip, saying so on standard error past the output capture, unless
//! `TWOFACTOR_REQUIRE_SERVERS=1` (set by CI): then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "postgres")]
use super::migrate::POSTGRES_MIGRATIONS;
#[cfg(feature = "sqlite")]
use super::migrate::SQLITE_MIGRATIONS;
use super::migrate::{Migration, CREATE_MIGRATIONS_TABLE};
#[cfg(feature = "postgres")]
use super::{postgres, LoginCommit};
use super::{Backend, SqlStore};
use crate::clock::Timestamp;
use crate::store::flow::{AttemptSpec, Opened, UserLimits};
#[cfg(feature = "postgres")]
use crate::store::flow::{Begun, NewChallenge, Settled, Settlement};
use crate::store::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, OtpStore, StoreKey};

fn word() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The test PostgreSQL's URL (`TWOFACTOR_TEST_POSTGRES_URL`) for the test `what`, or `None`
/// when it skips (see [`server_url`](crate::store::skips::server_url)).
#[cfg(feature = "postgres")]
fn postgres_url(what: &str) -> Option<String> {
    crate::store::skips::server_url("TWOFACTOR_TEST_POSTGRES_URL", what)
}

/// A store on a fresh schema of the test PostgreSQL, not yet migrated; `None` when the test
/// `what` skips PostgreSQL (see [`postgres_url`]).
#[cfg(feature = "postgres")]
async fn postgres_unmigrated(what: &str) -> Option<SqlStore> {
    let url = postgres_url(what)?;
    let store = SqlStore::builder(url)
        .schema(format!("tf_unit_{}_{}", std::process::id(), word()))
        .max_connections(8)
        .connect()
        .await
        .unwrap();
    Some(store)
}

/// A store on a fresh SQLite file, not yet migrated.
#[cfg(feature = "sqlite")]
async fn sqlite_unmigrated() -> SqlStore {
    let path = std::env::temp_dir().join(format!("twofactor-unit-{}.db", word()));
    SqlStore::builder(format!("sqlite://{}", path.display()))
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap()
}

/// Drops the PostgreSQL schema of a test store, or deletes the SQLite file.
async fn dispose(store: &SqlStore) {
    match &*store.backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres(pool) => {
            let schema = store.schema.as_deref().unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(pool)
                .await
                .unwrap();
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite(pool) => {
            let path: String = sqlx::query_scalar("SELECT file FROM pragma_database_list")
                .fetch_one(pool)
                .await
                .unwrap();
            pool.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Every store the test `what` runs on: SQLite, and PostgreSQL unless it skips it (see
/// [`postgres_url`]).
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
async fn stores(what: &str) -> Vec<SqlStore> {
    let mut out = Vec::new();
    #[cfg(feature = "sqlite")]
    out.push(sqlite_unmigrated().await);
    #[cfg(feature = "postgres")]
    out.extend(postgres_unmigrated(&format!("{what} (its PostgreSQL half)")).await);
    out
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

/// The two backends against each other.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
mod differential {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::store::flow::{Outcome, SendSpec};

    /// One random step of a login-shaped workload on one user with two challenges.
    struct Workload {
        rng: StdRng,
        now: u64,
        user: StoreKey,
        challenges: [StoreKey; 2],
        cooldowns: [StoreKey; 2],
        limits: UserLimits,
    }

    impl Workload {
        fn new(seed: u64) -> Self {
            let tag = word();
            let key = |s: String| StoreKey::new(format!("tf:u:{{{tag}}}{s}"));
            Workload {
                rng: StdRng::seed_from_u64(seed),
                now: 1_700_000_000,
                user: key(String::new()),
                challenges: [key(":c:0".into()), key(":c:1".into())],
                cooldowns: [key(":c:0:cool".into()), key(":c:1:cool".into())],
                limits: UserLimits::new(3, Duration::from_secs(300), Duration::from_secs(3_600)),
            }
        }

        /// Moves time on (now and then back a little, or on by a long way), then runs one random
        /// operation on `store`; returns its result as text.
        async fn step(&mut self, store: &SqlStore, pick: u32) -> String {
            let now = at(self.now);
            let r = &mut self.rng;
            let i = r.gen_range(0..2);
            let challenge = &self.challenges[i];
            let spec = SendSpec::new(
                &self.cooldowns[i],
                at(self.now + r.gen_range(0..40)),
                3,
                Duration::from_secs(400),
            );
            match pick {
                0..=2 => {
                    let code = [r.gen::<u8>(); 3];
                    let send = r.gen_bool(0.7).then_some((spec, &code[..]));
                    let new = NewChallenge {
                        user: &self.user,
                        limits: self.limits,
                        challenge,
                        value: b"value",
                        expires_at: at(self.now + r.gen_range(0..200)),
                        send,
                        send_required: r.gen_bool(0.3),
                    };
                    format!("{:?}", store.begin_challenge(&new, now).await)
                }
                3 | 4 => {
                    let named = r.gen_bool(0.7).then_some(challenge);
                    format!(
                        "{:?}",
                        store.reserve_send(&self.user, named, &spec, now).await
                    )
                }
                5 => {
                    let expires = at(self.now + r.gen_range(0..200));
                    let value = [r.gen::<u8>(); 2];
                    let create = r.gen_bool(0.5).then_some((&value[..], expires));
                    let code = [r.gen::<u8>(); 4];
                    format!(
                        "{:?}",
                        store.store_code(challenge, create, &code, now).await
                    )
                }
                6..=10 => {
                    let spec = AttemptSpec {
                        challenge: r.gen_bool(0.8).then_some((challenge, r.gen_range(0..5))),
                        user: &self.user,
                        limits: self.limits,
                    };
                    format!("{:?}", store.open_attempt(&spec, now).await)
                }
                11..=13 => {
                    let outcome = if r.gen_bool(0.6) {
                        Outcome::Passed {
                            totp_step: r.gen_bool(0.6).then(|| r.gen_range(0..12)),
                        }
                    } else {
                        Outcome::Lock {
                            until: at(self.now + r.gen_range(0..600)),
                            level: r.gen_range(0..4),
                        }
                    };
                    let settlement = Settlement {
                        challenge: r.gen_bool(0.8).then_some(challenge),
                        user: &self.user,
                        limits: self.limits,
                        outcome,
                    };
                    format!("{:?}", store.settle(&settlement, now).await)
                }
                15 => format!(
                    "{:?}",
                    store.end_challenges(&self.user, &self.limits, now).await
                ),
                _ => format!(
                    "{:?}",
                    store.user_state(&self.user, &self.limits, now).await
                ),
            }
        }
    }

    /// The composite operations of PostgreSQL (PL/pgSQL functions) and SQLite (the `rules` in
    /// Rust) give the same results over random sequences: refusals, counts, lapses, user records.
    #[test]
    fn composite_operations_agree_across_backends() {
        runtime().block_on(async {
            let Some(pg) = postgres_unmigrated("composite_operations_agree_across_backends").await
            else {
                return;
            };
            let lite = sqlite_unmigrated().await;
            pg.migrate().await.unwrap();
            lite.migrate().await.unwrap();
            for seed in 0..12u64 {
                // The same seed drives both stores: equal operations at equal times.
                let (mut a, mut b) = (Workload::new(seed), Workload::new(seed));
                b.user = a.user.clone();
                b.challenges = a.challenges.clone();
                b.cooldowns = a.cooldowns.clone();
                let mut picks = StdRng::seed_from_u64(seed ^ 0x5eed);
                for n in 0..250 {
                    let pick = picks.gen_range(0..16);
                    let jump = match picks.gen_range(0..40) {
                        0 => picks.gen_range(300..5_000),
                        1 => 0u64.wrapping_sub(picks.gen_range(1..10)),
                        _ => picks.gen_range(0..30),
                    };
                    a.now = a.now.wrapping_add(jump);
                    b.now = a.now;
                    let (x, y) = (a.step(&pg, pick).await, b.step(&lite, pick).await);
                    assert_eq!(x, y, "seed {seed}, step {n}: PostgreSQL and SQLite differ");
                    let (x, y) = (
                        pg.user_state(&a.user, &a.limits, at(a.now)).await.unwrap(),
                        lite.user_state(&b.user, &b.limits, at(b.now))
                            .await
                            .unwrap(),
                    );
                    assert_eq!(x, y, "seed {seed}, step {n}: the user records differ");
                }
            }
            dispose(&pg).await;
            dispose(&lite).await;
        });
    }
}

/// `load_with_codes` and `redeem_backup_code`: the record with the count, a redemption with
/// what remains, and of 32 concurrent redemptions of one code exactly one.
#[test]
fn enrollment_composites() {
    runtime().block_on(async {
        for store in stores("enrollment_composites").await {
            store.migrate().await.unwrap();
            let user = format!("user-{}", word());
            assert_eq!(store.load_with_codes(&user).await.unwrap(), (None, 0));
            let codes: Vec<BackupCodeRecord> = (0..5u8)
                .map(|i| BackupCodeRecord::new(vec![i; 32], None))
                .collect();
            store
                .replace_backup_codes(&user, &codes, at(100))
                .await
                .unwrap();
            assert_eq!(store.load_with_codes(&user).await.unwrap(), (None, 5));
            let record = EnrollmentRecord::new();
            let rev = store.save(&user, &record, None).await.unwrap().unwrap();
            assert_eq!(
                store.load_with_codes(&user).await.unwrap(),
                (Some((record, rev)), 5)
            );
            assert_eq!(
                store
                    .redeem_backup_code(&user, &[0; 32], at(101))
                    .await
                    .unwrap(),
                Some(4)
            );
            assert_eq!(
                store
                    .redeem_backup_code(&user, &[0; 32], at(102))
                    .await
                    .unwrap(),
                None,
                "a code is redeemed once"
            );
            assert_eq!(
                store
                    .redeem_backup_code(&user, &[9; 32], at(102))
                    .await
                    .unwrap(),
                None
            );
            let store = Arc::new(store);
            let mut tasks = Vec::new();
            for _ in 0..32 {
                let (store, user) = (store.clone(), user.clone());
                tasks.push(tokio::spawn(async move {
                    store.redeem_backup_code(&user, &[1; 32], at(103)).await
                }));
            }
            let mut redeemed = Vec::new();
            for t in tasks {
                redeemed.extend(t.await.unwrap().unwrap());
            }
            assert_eq!(
                redeemed,
                vec![3],
                "exactly one of 32 concurrent redemptions"
            );
            assert_eq!(store.load_with_codes(&user).await.unwrap().1, 3);
            assert_eq!(
                store.load_with_codes("someone else").await.unwrap(),
                (None, 0)
            );
            dispose(&store).await;
        }
    });
}

/// A database at version 1 migrates to the current version with its records readable, and the
/// composite operations then work on it.
#[test]
fn migrations_apply_on_top_of_version_1() {
    runtime().block_on(async {
        for store in stores("migrations_apply_on_top_of_version_1").await {
            let (migrations, begin, bytes): (&[Migration], &str, &str) = match &*store.backend {
                #[cfg(feature = "postgres")]
                Backend::Postgres(_) => (POSTGRES_MIGRATIONS, "BEGIN", "'\\x00ff'::bytea"),
                #[cfg(feature = "sqlite")]
                Backend::Sqlite(_) => (SQLITE_MIGRATIONS, "BEGIN IMMEDIATE", "X'00ff'"),
            };
            let v1 = migrations.first().unwrap();
            assert_eq!(v1.version, 1);
            // Version 1 as an earlier release left it, with a record of each kind.
            let script = format!(
                "{begin};
                {schema}
                {CREATE_MIGRATIONS_TABLE};
                {sql}
                INSERT INTO twofactor_schema_migrations (version, name) VALUES (1, 'init');
                INSERT INTO twofactor_otp (key, value, number, expires_at)
                    VALUES ('{{u}}:code', {bytes}, NULL, 500), ('{{u}}:n', NULL, 4, 500);
                INSERT INTO twofactor_enrollments (user_id, record, revision)
                    VALUES ('u', '{record}', 3);
                COMMIT;",
                schema = store
                    .schema
                    .as_deref()
                    .map(|s| format!("CREATE SCHEMA {s};"))
                    .unwrap_or_default(),
                sql = v1.sql,
                record = serde_json::to_string(&EnrollmentRecord::new()).unwrap(),
            );
            with_pool!(store.backend, pool => sqlx::raw_sql(&script).execute(pool).await.map(|_| ()))
                .unwrap();
            store.migrate().await.unwrap();
            store.migrate().await.unwrap();
            let versions: Vec<i64> = with_pool!(store.backend, pool => sqlx::query_scalar(
                "SELECT version FROM twofactor_schema_migrations ORDER BY version",
            )
            .fetch_all(pool)
            .await)
            .unwrap();
            let all: Vec<i64> = migrations.iter().map(|m| m.version).collect();
            assert_eq!(versions, all);
            let now = at(100);
            assert_eq!(
                store.get(&StoreKey::new("{u}:code"), now).await.unwrap(),
                Some(vec![0, 255])
            );
            assert_eq!(
                store
                    .increment(&StoreKey::new("{u}:n"), at(500), now)
                    .await
                    .unwrap(),
                5
            );
            assert_eq!(
                store.load_with_codes("u").await.unwrap(),
                (Some((EnrollmentRecord::new(), 3)), 0)
            );
            // A composite operation on a key written by version 1 keeps its value.
            let user = StoreKey::new("{u}");
            let limits = UserLimits::new(3, Duration::from_secs(60), Duration::from_secs(600));
            assert!(store
                .store_code(&StoreKey::new("{u}:code"), None, b"c", now)
                .await
                .unwrap());
            let spec = AttemptSpec {
                challenge: Some((&StoreKey::new("{u}:code"), 5)),
                user: &user,
                limits,
            };
            let Opened::Open(open) = store.open_attempt(&spec, now).await.unwrap() else {
                panic!("an attempt opens on the migrated record");
            };
            let challenge = open.challenge.unwrap();
            assert_eq!(challenge.value, vec![0, 255]);
            assert_eq!(challenge.code.as_deref(), Some(&b"c"[..]));
            assert_eq!((open.attempts, open.failures), (1, 1));
            dispose(&store).await;
        }
    });
}

/// A database at version 2 (before the epoch) migrates to version 3 with its user records and
/// challenges read as epoch 0: a challenge open during the upgrade stands until the user's
/// epoch moves on.
#[test]
fn migration_3_reads_earlier_rows_as_epoch_0() {
    runtime().block_on(async {
        for store in stores("migration_3_reads_earlier_rows_as_epoch_0").await {
            let (migrations, begin): (&[Migration], &str) = match &*store.backend {
                #[cfg(feature = "postgres")]
                Backend::Postgres(_) => (POSTGRES_MIGRATIONS, "BEGIN"),
                #[cfg(feature = "sqlite")]
                Backend::Sqlite(_) => (SQLITE_MIGRATIONS, "BEGIN IMMEDIATE"),
            };
            let v2: Vec<&Migration> = migrations.iter().filter(|m| m.version <= 2).collect();
            assert_eq!(v2.len(), 2);
            let script = format!(
                "{begin};
                {schema}
                {CREATE_MIGRATIONS_TABLE};
                {v1}
                {v2}
                INSERT INTO twofactor_schema_migrations (version, name)
                    VALUES (1, 'init'), (2, 'flow');
                INSERT INTO twofactor_users (key, failures, failures_until, level, locked_until,
                    last_step, sends, sends_until, last_verified_at, expires_at)
                    VALUES ('{{e}}', 1, 500, 0, 0, 42, 0, 0, NULL, 5000);
                INSERT INTO twofactor_otp (key, value, number, code, expires_at)
                    VALUES ('{{e}}:c', NULL, 1, NULL, 500);
                COMMIT;",
                schema = store
                    .schema
                    .as_deref()
                    .map(|s| format!("CREATE SCHEMA {s};"))
                    .unwrap_or_default(),
                v1 = v2[0].sql,
                v2 = v2[1].sql,
            );
            with_pool!(store.backend, pool => sqlx::raw_sql(&script).execute(pool).await.map(|_| ()))
                .unwrap();
            store.migrate().await.unwrap();
            let now = at(100);
            let user = StoreKey::new("{e}");
            let limits = UserLimits::new(3, Duration::from_secs(600), Duration::from_secs(600));
            let state = store.user_state(&user, &limits, now).await.unwrap();
            assert_eq!(
                (state.failures, state.last_step, state.epoch),
                (1, Some(42), 0)
            );
            let spec = AttemptSpec {
                challenge: Some((&StoreKey::new("{e}:c"), 5)),
                user: &user,
                limits,
            };
            let Opened::Open(open) = store.open_attempt(&spec, now).await.unwrap() else {
                panic!("an attempt opens on the challenge of version 2");
            };
            assert_eq!(
                (open.attempts, open.challenge.unwrap().epoch),
                (2, Some(0))
            );
            assert_eq!(store.end_challenges(&user, &limits, now).await.unwrap(), 1);
            assert_eq!(
                store.open_attempt(&spec, now).await.unwrap(),
                Opened::NoChallenge
            );
            dispose(&store).await;
        }
    });
}

/// `dangerous_asynchronous_login_commits`: the login steps' statements turn `synchronous_commit`
/// off for their own transaction, and the setting never stays on the connection for the
/// statements that follow (enrolment writes, backup codes).
#[cfg(feature = "postgres")]
#[test]
fn asynchronous_login_commits_stay_in_their_own_transaction() {
    runtime().block_on(async {
        let Some(url) = postgres_url("asynchronous_login_commits_stay_in_their_own_transaction")
        else {
            return;
        };
        let store = SqlStore::builder(url)
            .schema(format!("tf_unit_{}_{}", std::process::id(), word()))
            .max_connections(1)
            .dangerous_asynchronous_login_commits(true)
            .connect()
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let Backend::Postgres(pool) = &*store.backend else {
            panic!("a PostgreSQL store");
        };
        let setting = || async {
            sqlx::query_scalar::<_, String>("SELECT current_setting('synchronous_commit')")
                .fetch_one(pool)
                .await
                .unwrap()
        };
        let server_default = setting().await;
        assert_ne!(
            server_default, "off",
            "the test server commits synchronously"
        );
        // A login on the store's one connection: begin, a wrong attempt, a lock, a pass.
        let (user, challenge) = (StoreKey::new("u:{t}"), StoreKey::new("u:{t}:c"));
        let limits = UserLimits::new(5, Duration::from_secs(600), Duration::from_secs(3_600));
        let new = NewChallenge {
            user: &user,
            limits,
            challenge: &challenge,
            value: b"v",
            expires_at: at(1_000),
            send: None,
            send_required: false,
        };
        assert_eq!(
            store.begin_challenge(&new, at(100)).await.unwrap(),
            Begun::Created { send: None }
        );
        assert_eq!(
            setting().await,
            server_default,
            "not left on the connection"
        );
        let spec = AttemptSpec {
            challenge: Some((&challenge, 5)),
            user: &user,
            limits,
        };
        assert!(matches!(
            store.open_attempt(&spec, at(101)).await.unwrap(),
            Opened::Open(_)
        ));
        assert_eq!(
            setting().await,
            server_default,
            "not left on the connection"
        );
        let pass = Settlement {
            challenge: Some(&challenge),
            user: &user,
            limits,
            outcome: crate::store::flow::Outcome::Passed { totp_step: Some(7) },
        };
        assert_eq!(store.settle(&pass, at(102)).await.unwrap(), Settled::Done);
        assert_eq!(
            setting().await,
            server_default,
            "not left on the connection"
        );
        assert_eq!(
            store
                .user_state(&user, &limits, at(103))
                .await
                .unwrap()
                .last_step,
            Some(7)
        );
        // Inside a transaction, a login statement's text turns it off for that transaction
        // alone (read in the same statement, after the call ran); the durable text leaves it.
        for (commit, expected) in [
            (LoginCommit::Asynchronous, "off"),
            (LoginCommit::Durable, server_default.as_str()),
        ] {
            let text = postgres::sql(postgres::OPEN_ATTEMPT, commit);
            let mut tx = pool.begin().await.unwrap();
            let seen: String = sqlx::query_scalar(&format!(
                "SELECT current_setting('synchronous_commit') FROM ({text}) run"
            ))
            .bind(challenge.as_str())
            .bind(5_i64)
            .bind(user.as_str())
            .bind(5_i64)
            .bind(600_i64)
            .bind(3_600_i64)
            .bind(104_i64)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(seen, expected, "{text}");
            let after: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(after, expected, "kept to the end of the transaction");
            tx.rollback().await.unwrap();
        }
        for call in [
            postgres::BEGIN_CHALLENGE,
            postgres::RESERVE_SEND,
            postgres::OPEN_ATTEMPT,
            postgres::SETTLE,
        ] {
            let text = postgres::sql(call, LoginCommit::Asynchronous);
            assert!(text.ends_with(" f, set_config('synchronous_commit', 'off', true) c"));
            assert_eq!(
                text.replace(" f, set_config('synchronous_commit', 'off', true) c", "")
                    .replace("SELECT f.*", "SELECT *"),
                postgres::sql(call, LoginCommit::Durable)
            );
        }
        assert_eq!(setting().await, server_default);
        dispose(&store).await;
    });
}
