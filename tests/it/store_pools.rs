//! Stores on the host's own connections: `SqlStore::from_pool` (a `PgPool` or `SqlitePool`)
//! and `RedisOtpStore::from_connection` (a redis `ConnectionManager`). Each runs a whole TOTP
//! enrolment and login through the service, and the host's handle sees what the store wrote:
//! one pool, one connection, not a second one opened beside it.

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    clock::Timestamp, store::EnrollmentStore, store::MemoryEnrollmentStore, store::OtpStore,
    testing::ManualClock, testing::RecordingMailer, totp::totp_code, totp::TotpParams,
    totp::TotpSecret, Keyring, LoginStep, TwoFactorService,
};

use crate::support::START;

/// Enrols TOTP for `user` and logs in with it, on the given stores.
async fn enrol_and_log_in(otp: impl OtpStore, enrollments: impl EnrollmentStore, user: &str) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(START));
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(otp)
        .enrollments(enrollments)
        .mailer(RecordingMailer::new())
        .clock(clock.clone())
        .build()
        .unwrap();
    let code = |secret: &str| {
        use twofactor::clock::Clock;
        let s = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            s.as_bytes(),
            TotpParams::default(),
            clock.now().as_unix_secs(),
        )
    };
    let setup = tf.totp().start_setup(user, "a@example.com").await.unwrap();
    let secret = setup.secret_base32().to_owned();
    tf.totp().confirm_setup(user, &code(&secret)).await.unwrap();
    clock.advance(Duration::from_secs(30));
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), user).await.unwrap() else {
        panic!("an enrolled user gets a challenge")
    };
    let v = tf
        .verify_login(LoginContext::none(), ch.token(), &code(&secret))
        .await
        .unwrap();
    assert_eq!(v.user(), user);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sql_store_runs_on_the_hosts_sqlite_pool() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    // One in-memory database that lives only in this pool's one connection: were the store to
    // open a connection of its own, it would see another, empty database.
    let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.foreign_keys(true))
        .await
        .unwrap();
    let store = twofactor::store::SqlStore::from_pool(pool.clone());
    assert_eq!(store.backend_name(), "sqlite");
    // migrate and connect share one error type: both go through one `?` in a host's start-up.
    let migrated: Result<(), twofactor::Error> = store.migrate().await;
    migrated.unwrap();
    enrol_and_log_in(store.clone(), store.clone(), "u1").await;
    let enrolled: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM twofactor_enrollments WHERE record IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(enrolled, 1);
    assert_eq!(pool.size(), 1);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_sql_store_runs_on_the_hosts_postgres_pool() {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let Some(url) = crate::support::stores::postgres_url() else {
        return;
    };
    // The host keeps the tables in a schema of its own, through its connections' search_path.
    let schema = format!("{}_pool", crate::support::stores::pg_schema());
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let store = twofactor::store::SqlStore::from_pool(pool.clone());
    assert_eq!(store.backend_name(), "postgres");
    let migrated: Result<(), twofactor::Error> = store.migrate().await;
    migrated.unwrap();
    let user = format!("u-{}", crate::support::stores::random_word());
    enrol_and_log_in(store.clone(), store.clone(), &user).await;
    let enrolled: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {schema}.twofactor_enrollments WHERE user_id = $1 AND record IS NOT NULL"
    ))
    .bind(&user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(enrolled, 1);
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

/// `migrate` fails with the same `Error` as `connect`: a closed pool is a transient store error.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn migrate_fails_with_the_error_type_of_connect() {
    let store = twofactor::store::SqlStore::connect("sqlite::memory:")
        .await
        .unwrap();
    store.close().await;
    let e: twofactor::Error = store.migrate().await.unwrap_err();
    assert!(matches!(e, twofactor::Error::Store(_)), "{e:?}");
    assert_eq!(e.code(), "store_unavailable");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_store_runs_on_the_hosts_connection() {
    use redis::AsyncCommands;
    let Some(url) = crate::support::stores::redis_url() else {
        return;
    };
    let client = redis::Client::open(url).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let prefix = crate::support::stores::redis_prefix();
    let store =
        twofactor::store::RedisOtpStore::from_connection(conn.clone(), prefix.clone()).unwrap();
    assert_eq!(store.prefix(), prefix);
    enrol_and_log_in(store, MemoryEnrollmentStore::new(), "u1").await;
    // The host's connection sees the records the store wrote under its prefix.
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    assert!(!keys.is_empty());
    let _: () = conn.del(keys).await.unwrap();

    for bad in ["acme:{2fa}:", "{", "}"] {
        assert!(matches!(
            twofactor::store::RedisOtpStore::from_connection(conn.clone(), bad),
            Err(twofactor::Error::InvalidConfig(_))
        ));
    }
}
