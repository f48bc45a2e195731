//! [`SqlStore`]: both stores on PostgreSQL (feature `postgres`) or SQLite (feature `sqlite`).
//!
//! The schema ships with the crate under `migrations/` and is applied by [`SqlStore::migrate`].
//! Every [`OtpStore`] primitive and every backup-code consumption is one statement, atomic on its
//! own (`INSERT … ON CONFLICT … RETURNING`, `UPDATE … WHERE used_at IS NULL RETURNING`,
//! `DELETE … RETURNING`); replacing a backup-code set and removing a user are one transaction.
//! The composite operations of [`flow`](crate::store::flow) run natively: on PostgreSQL each one is one
//! statement, a call of a PL/pgSQL function (`migrations/postgres/0002_flow.sql`); on SQLite,
//! which runs in the process, each one is one transaction on one connection (`BEGIN IMMEDIATE`:
//! read the rows, apply [`flow::rules`](crate::store::flow::rules) in Rust, write back, commit).
//!
//! Timestamps and numbers are stored as signed 64-bit integers; values beyond `i64::MAX` (the
//! year 292 billion) are clamped to it. Whether a record is live is decided from its
//! `expires_at` and the `now` passed in, never from the database's clock.
//!
//! # Layout
//!
//! | table | a row is | columns |
//! | --- | --- | --- |
//! | `twofactor_otp` | a short-lived record | `key`; `value` (bytes); `number` (a counter or a TOTP step); `code` (a challenge's current code); `expires_at` |
//! | `twofactor_users` | the [`UserState`] of a user key | one column per field (`failures`, `failures_until`, `level`, `locked_until`, `last_step`, `sends`, `sends_until`, `last_verified_at`); `expires_at` |
//! | `twofactor_enrollments` | a user who ever enrolled | `user_id`; `record` (the [`EnrollmentRecord`] as JSON, NULL once removed); `revision` |
//! | `twofactor_backup_codes` | a backup code | `user_id`, `lookup`; `verifier`; `created_at`; `used_at` (NULL while unused) |
//! | `twofactor_schema_migrations` | an applied migration | `version`, `name` |
//!
//! For the composite operations, a challenge (or pending code) is a `twofactor_otp` row: its
//! value in `value`, its attempt count in `number`, its code in `code`. A send's cooldown is a
//! `twofactor_otp` row that expires when the cooldown ends. A user's record is a
//! `twofactor_users` row, kept as long as [`rules::user_expires_at`] says; a row that has expired
//! reads as the default record. [`SqlStore::purge_expired`] deletes expired rows of both tables.
//!
//! # Statements per operation
//!
//! A PostgreSQL statement is one round trip (prepared once per connection, then cached; the pool
//! does not ping a connection before handing it out). A SQLite transaction counts its `BEGIN`
//! and `COMMIT`; statements in italics run only on some paths.
//!
//! | operation | PostgreSQL | SQLite |
//! | --- | --- | --- |
//! | each primitive (`put` … `advance`) | 1 | 1 |
//! | `begin_challenge` | 1: `twofactor_begin_challenge` | 1 transaction, 3–7: user, *cooldown*, *insert challenge*, *cooldown, user* |
//! | `reserve_send` | 1: `twofactor_reserve_send` | 1 transaction, 3–7: *challenge*, *user, cooldown*, *cooldown, user* |
//! | `store_code` | 1: `INSERT … ON CONFLICT` or `UPDATE` | the same 1 |
//! | `open_attempt` | 1: `twofactor_open_attempt` | 1 transaction, 3–6: *challenge*, user, *attempts, user* |
//! | `settle` | 1: `twofactor_settle` | 1 transaction, 3–6: *challenge*, user, *delete challenge, user* |
//! | `user_state` | 1: `SELECT` | the same 1 |
//! | `load`, `save`, `find_backup_code`, `consume_backup_code`, `backup_codes_remaining` | 1 | 1 |
//! | `load_with_codes` | 1: `SELECT` with a count | the same 1 |
//! | `redeem_backup_code` | 1: `WITH used AS (UPDATE …) SELECT` counts | 1 transaction, 3–4: consume, *count* |
//! | `replace_backup_codes` | 1 transaction: delete, one insert per 200 codes | the same |
//! | `remove` | 1 transaction: delete codes, clear record | the same |
//! | `purge_expired` | 2: one per table | 2 |
//!
//! The PostgreSQL functions lock the user's row first (`SELECT … FOR UPDATE`, inserting an
//! expired placeholder row when there is none), then the challenge's: the operations of one user
//! run one after the other, and no two of them wait for each other's locks in opposite order.
//! `reserve_send` is given no [`UserLimits`]: it keeps the lock level as stored, and keeps the
//! user's row as long as before and at least to the end of the send window. A
//! `begin_challenge` whose key collides with a live record writes nothing, not even the send it
//! would have reserved.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::store::flow::{
    rules, AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement,
    UserLimits, UserState,
};
use crate::store::{
    BackupCodeRecord, EnrollmentRecord, EnrollmentStore, OtpStore, Revision, StoreKey,
};

#[cfg(feature = "postgres")]
#[path = "sql/postgres.rs"]
mod postgres;
#[cfg(feature = "sqlite")]
#[path = "sql/sqlite.rs"]
mod sqlite;

/// One schema migration shipped with the crate.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "flow",
        sql: include_str!("../../migrations/postgres/0002_flow.sql"),
    },
];

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "flow",
        sql: include_str!("../../migrations/sqlite/0002_flow.sql"),
    },
];

/// The table recording which migrations ran (its own, so a host's own migration tool is not
/// disturbed).
const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS twofactor_schema_migrations (
    version BIGINT PRIMARY KEY,
    name    TEXT   NOT NULL
)";

/// Key of the PostgreSQL advisory lock that serialises concurrent `migrate()` calls.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK: i64 = 0x7477_6f66_6163_746f; // "twofacto"

/// The largest number of backup codes inserted by one statement.
const CODES_PER_INSERT: usize = 200;

const OTP_PUT: &str = "INSERT INTO twofactor_otp (key, value, number, expires_at)
VALUES ($1, $2, NULL, $3)
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, number = NULL, code = NULL, expires_at = excluded.expires_at";

const OTP_PUT_IF_ABSENT: &str = "INSERT INTO twofactor_otp (key, value, number, expires_at)
VALUES ($1, $2, NULL, $3)
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, number = NULL, code = NULL, expires_at = excluded.expires_at
WHERE twofactor_otp.expires_at <= $4
RETURNING key";

const OTP_GET: &str = "SELECT value, number FROM twofactor_otp WHERE key = $1 AND expires_at > $2";

const OTP_TAKE: &str =
    "DELETE FROM twofactor_otp WHERE key = $1 RETURNING value, number, expires_at";

const OTP_DELETE: &str = "DELETE FROM twofactor_otp WHERE key = $1";

const OTP_INCREMENT: &str = "INSERT INTO twofactor_otp (key, value, number, expires_at)
VALUES ($1, NULL, 1, $2)
ON CONFLICT (key) DO UPDATE SET
    number = CASE WHEN twofactor_otp.expires_at > $3 THEN twofactor_otp.number + 1 ELSE 1 END,
    value = CASE WHEN twofactor_otp.expires_at > $3 THEN twofactor_otp.value ELSE NULL END,
    code = CASE WHEN twofactor_otp.expires_at > $3 THEN twofactor_otp.code ELSE NULL END,
    expires_at = CASE WHEN twofactor_otp.expires_at > $3
        THEN twofactor_otp.expires_at ELSE excluded.expires_at END
RETURNING number";

const OTP_ADVANCE: &str = "INSERT INTO twofactor_otp (key, value, number, expires_at)
VALUES ($1, NULL, $2, $3)
ON CONFLICT (key) DO UPDATE
SET value = NULL, number = excluded.number, code = NULL, expires_at = excluded.expires_at
WHERE twofactor_otp.expires_at <= $4 OR twofactor_otp.number < excluded.number
RETURNING key";

const OTP_PURGE: &str = "DELETE FROM twofactor_otp WHERE expires_at <= $1";

const USERS_PURGE: &str = "DELETE FROM twofactor_users WHERE expires_at <= $1";

/// `store_code` with `create`: value, expiry and code replaced, the attempt count kept while the
/// record is live.
const CODE_CREATE: &str = "INSERT INTO twofactor_otp (key, value, number, code, expires_at)
VALUES ($1, $2, 0, $3, $4)
ON CONFLICT (key) DO UPDATE SET
    value = excluded.value,
    number = CASE WHEN twofactor_otp.expires_at > $5 THEN COALESCE(twofactor_otp.number, 0) ELSE 0 END,
    code = excluded.code,
    expires_at = excluded.expires_at";

/// `store_code` without `create`: the code of a live record only.
const CODE_REPLACE: &str = "UPDATE twofactor_otp SET code = $2 WHERE key = $1 AND expires_at > $3";

/// The user's record, when live (`user_state`, and the SQLite transactions).
const USER_GET: &str = "SELECT failures, failures_until, level, locked_until, last_step, sends,
    sends_until, last_verified_at
FROM twofactor_users WHERE key = $1 AND expires_at > $2";

const ENROLLMENT_LOAD: &str = "SELECT record, revision FROM twofactor_enrollments
WHERE user_id = $1 AND record IS NOT NULL";

/// The record (if any) and the unused backup codes, in one row.
const ENROLLMENT_LOAD_WITH_CODES: &str = "SELECT e.record, e.revision,
    (SELECT COUNT(*) FROM twofactor_backup_codes c WHERE c.user_id = $1 AND c.used_at IS NULL)
FROM (SELECT 1) AS one
LEFT JOIN twofactor_enrollments e ON e.user_id = $1 AND e.record IS NOT NULL";

const ENROLLMENT_INSERT: &str = "INSERT INTO twofactor_enrollments (user_id, record, revision)
VALUES ($1, $2, 1)
ON CONFLICT (user_id) DO UPDATE
SET record = excluded.record, revision = twofactor_enrollments.revision + 1
WHERE twofactor_enrollments.record IS NULL
RETURNING revision";

const ENROLLMENT_UPDATE: &str = "UPDATE twofactor_enrollments
SET record = $2, revision = revision + 1
WHERE user_id = $1 AND revision = $3 AND record IS NOT NULL
RETURNING revision";

const ENROLLMENT_REMOVE: &str = "UPDATE twofactor_enrollments
SET record = NULL, revision = revision + 1
WHERE user_id = $1 AND record IS NOT NULL";

const CODES_DELETE: &str = "DELETE FROM twofactor_backup_codes WHERE user_id = $1";

const CODES_FIND: &str = "SELECT lookup, verifier FROM twofactor_backup_codes
WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL";

const CODES_CONSUME: &str = "UPDATE twofactor_backup_codes SET used_at = $3
WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL
RETURNING lookup";

const CODES_REMAINING: &str = "SELECT COUNT(*) FROM twofactor_backup_codes
WHERE user_id = $1 AND used_at IS NULL";

/// Consumes a code and counts the unused ones, in one statement. Both counts read the snapshot
/// taken before the `UPDATE`: the remaining count is the second minus the first.
#[cfg(feature = "postgres")]
const CODES_REDEEM: &str = "WITH used AS (
    UPDATE twofactor_backup_codes SET used_at = $3
    WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM used),
    (SELECT COUNT(*) FROM twofactor_backup_codes WHERE user_id = $1 AND used_at IS NULL)";

pub(crate) enum Backend {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Runs the composite operation `$op` of the backend's module (`postgres` or `sqlite`) on its
/// pool (PostgreSQL's also gets the store's [`LoginCommit`]).
macro_rules! composite {
    ($store:expr, $op:ident($($arg:expr),* $(,)?)) => {
        match &*$store.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => postgres::$op(pool, $store.commit, $($arg),*).await,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => sqlite::$op(pool, $($arg),*).await,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend the store uses. The SQL is
/// the same text for both: SQLite accepts PostgreSQL's `$1` parameters.
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match &*$backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres($pool) => $body,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a new transaction (SQLite: `BEGIN IMMEDIATE`, so the write
/// lock is taken up front), and commits it when `$body` succeeds.
macro_rules! in_transaction {
    ($backend:expr, $tx:ident => $body:expr) => {
        match &*$backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
        }
    };
}

/// Both stores on one SQL database: PostgreSQL for a fleet, SQLite for a single process that
/// wants durable state in a file.
///
/// Call [`SqlStore::migrate`] once at start-up. Short-lived records expire by the `now` the
/// service passes in; call [`SqlStore::purge_expired`] from time to time (every few minutes) to
/// delete them. Cloning is cheap: clones share one connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::Error> {
/// use std::sync::Arc;
/// use twofactor::store::SqlStore;
///
/// let store = SqlStore::connect("sqlite://twofactor.db").await?; // or "postgres://…"
/// store.migrate().await?;
/// let store = Arc::new(store); // one Arc serves as both the OtpStore and the EnrollmentStore
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlStore {
    backend: std::sync::Arc<Backend>,
    schema: Option<String>,
    commit: LoginCommit,
}

/// How PostgreSQL commits the login steps' short-lived state (challenges, attempt counts, runs
/// of failures, locks, the last TOTP step, send budgets); set with
/// `SqlStoreBuilder::dangerous_asynchronous_login_commits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LoginCommit {
    /// Every commit waits for its WAL flush, as the server is configured (the default).
    #[default]
    Durable,
    /// The composite login operations commit with `synchronous_commit = off`: see the warning
    /// on [`SqlStoreBuilder::dangerous_asynchronous_login_commits`].
    Asynchronous,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend_name())
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A sqlx pool a [`SqlStore`] can run on ([`SqlStore::from_pool`]): `sqlx::PgPool` with the
/// `postgres` feature, `sqlx::SqlitePool` with `sqlite`. Sealed: implemented for those only.
pub trait SqlPool: pool::Sealed {}

// The trait sits in a private module (the sealed pattern): nobody outside the crate can name
// it, so its method may return the crate-private backend.
#[allow(private_interfaces)]
mod pool {
    /// Turns a pool into the store's backend.
    pub trait Sealed {
        fn into_backend(self) -> super::Backend;
    }

    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::PgPool {
        fn into_backend(self) -> super::Backend {
            super::Backend::Postgres(self)
        }
    }

    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::SqlitePool {
        fn into_backend(self) -> super::Backend {
            super::Backend::Sqlite(self)
        }
    }
}

#[cfg(feature = "postgres")]
impl SqlPool for sqlx::PgPool {}
#[cfg(feature = "sqlite")]
impl SqlPool for sqlx::SqlitePool {}

/// Configures and connects a [`SqlStore`]; made by [`SqlStore::builder`].
pub struct SqlStoreBuilder {
    url: String,
    max_connections: u32,
    acquire_timeout: Duration,
    schema: Option<String>,
    commit: LoginCommit,
}

impl fmt::Debug for SqlStoreBuilder {
    // The URL may hold a password: it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStoreBuilder")
            .field("url", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("schema", &self.schema)
            .field("commit", &self.commit)
            .finish()
    }
}

impl SqlStoreBuilder {
    /// The largest number of pooled connections (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a call may wait for a connection, and SQLite for a lock (default 5 s); past it
    /// the call fails with a transient [`StoreError`] of kind `Timeout`.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// PostgreSQL only: keep the tables in this schema (created by [`SqlStore::migrate`]) by
    /// putting it first on every connection's `search_path`. Lower-case ASCII letters, digits
    /// and `_`, at most 63 characters, not starting with a digit. Useful to keep the tables
    /// apart from the host's, and to give parallel test runs their own tables.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// PostgreSQL only: commit the login steps' short-lived state without waiting for the WAL
    /// flush (`synchronous_commit = off` for those transactions alone). Off by default.
    ///
    /// It applies to `begin_challenge`, `reserve_send`, `open_attempt` and `settle`, the
    /// operations of [`flow`](crate::store::flow) that [`begin_login`](crate::TwoFactorService::begin_login),
    /// [`resend_code`](crate::TwoFactorService::resend_code) and
    /// [`verify_login`](crate::TwoFactorService::verify_login) run. A login then waits for no
    /// disk flush: on a server where a flush takes milliseconds this multiplies the logins per
    /// second. Enrolment records, backup codes, pending codes and everything else keep the
    /// server's setting; the setting is local to each of those transactions and never stays on
    /// the connection.
    ///
    /// **WARNING**: if the PostgreSQL server crashes (or its machine loses power), the login
    /// state committed in the last moments before it (up to three times `wal_writer_delay`,
    /// 600 ms by default) is lost, and the server comes back as it was before. That can re-open:
    /// a challenge already passed, with the TOTP step it used, so the same code can sign in once
    /// more while it is current; attempts and failures counted in that span, so an attacker who
    /// can crash the server gets those guesses again; a lock set in that span; a send and its
    /// cooldown. The database stays consistent (no torn records), and an application crash
    /// loses nothing. Use it only where a server crash is rare and such a replay is an
    /// accepted risk.
    pub fn dangerous_asynchronous_login_commits(mut self, on: bool) -> Self {
        self.commit = if on {
            LoginCommit::Asynchronous
        } else {
            LoginCommit::Durable
        };
        self
    }

    /// Connects. The URL's scheme chooses the backend: `postgres://` or `postgresql://`
    /// (feature `postgres`), `sqlite:` (feature `sqlite`; `sqlite://path/file.db` creates the
    /// file when missing, `sqlite::memory:` is an in-memory database).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an unknown scheme, a backend not compiled in, or a malformed
    /// URL; [`Error::Store`] when the database cannot be reached in time.
    pub async fn connect(self) -> Result<SqlStore, Error> {
        if let Some(schema) = &self.schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && !schema.starts_with(|c: char| c.is_ascii_digit())
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(Error::InvalidConfig(
                    "the schema name must be lower-case ASCII letters, digits and `_`".into(),
                ));
            }
        }
        let backend =
            if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
                self.connect_postgres().await?
            } else if self.url.starts_with("sqlite:") {
                self.connect_sqlite().await?
            } else {
                return Err(Error::InvalidConfig(
                    "the SQL URL must start with postgres://, postgresql:// or sqlite:".into(),
                ));
            };
        Ok(SqlStore {
            backend: std::sync::Arc::new(backend),
            schema: self.schema,
            commit: self.commit,
        })
    }

    #[cfg(feature = "postgres")]
    async fn connect_postgres(&self) -> Result<Backend, Error> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        // The parse error may quote the URL and its password: not passed on.
        let mut options: PgConnectOptions = self
            .url
            .parse()
            .map_err(|_| Error::InvalidConfig("the PostgreSQL URL is not valid".into()))?;
        if let Some(schema) = &self.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        // No ping before each acquire: it costs a round trip per statement. A broken
        // connection fails its statement, and the pool's check on release closes it.
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Backend::Postgres(pool))
    }

    #[cfg(not(feature = "postgres"))]
    async fn connect_postgres(&self) -> Result<Backend, Error> {
        Err(Error::InvalidConfig(
            "PostgreSQL support needs the `postgres` feature of twofactor".into(),
        ))
    }

    #[cfg(feature = "sqlite")]
    async fn connect_sqlite(&self) -> Result<Backend, Error> {
        if self.schema.is_some() {
            return Err(Error::InvalidConfig(
                "a schema can only be chosen on PostgreSQL".into(),
            ));
        }
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let in_memory = self.url.contains(":memory:") || self.url.contains("mode=memory");
        let mut options: SqliteConnectOptions = self
            .url
            .parse()
            .map_err(|_| Error::InvalidConfig("the SQLite URL is not valid".into()))?;
        options = options
            .create_if_missing(true)
            .busy_timeout(self.acquire_timeout)
            .foreign_keys(true);
        if !in_memory {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        let mut pool = SqlitePoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false);
        if in_memory {
            // An in-memory database lives as long as one connection to it: keep one open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Backend::Sqlite(pool))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn connect_sqlite(&self) -> Result<Backend, Error> {
        Err(Error::InvalidConfig(
            "SQLite support needs the `sqlite` feature of twofactor".into(),
        ))
    }
}

impl SqlStore {
    /// A builder for a store at `url`; see [`SqlStoreBuilder::connect`] for the URL forms.
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
            commit: LoginCommit::Durable,
        }
    }

    /// Connects to `url` with the default pool settings.
    ///
    /// # Errors
    ///
    /// As [`SqlStoreBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect().await
    }

    /// A store on a pool the host already has, so it opens no second one: a `sqlx::PgPool`
    /// (feature `postgres`) or a `sqlx::SqlitePool` (feature `sqlite`), from the sqlx version
    /// this crate uses (0.8). Clones of the pool are shared, and its settings apply as they are.
    ///
    /// The pool's connections should look as [`connect`](Self::connect) would make them: on
    /// PostgreSQL the tables are found through the connections' `search_path` (set it there to
    /// keep them in a schema of their own); on SQLite turn on foreign keys and set a busy
    /// timeout (WAL mode recommended). Call [`migrate`](Self::migrate) as usual.
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://app@db/app").await?; // the host's pool
    /// let store = twofactor::store::SqlStore::from_pool(pool.clone());
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: impl SqlPool) -> Self {
        SqlStore {
            backend: std::sync::Arc::new(pool.into_backend()),
            schema: None,
            commit: LoginCommit::Durable,
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Creates or upgrades the tables (see `migrations/` in the crate). Safe to call at every
    /// start and from several instances at once: each migration runs once, in a transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the database fails or refuses the statements: the same error type
    /// as [`connect`](Self::connect), so both go through one `?`.
    pub async fn migrate(&self) -> Result<(), Error> {
        let run: Result<(), sqlx::Error> = async {
            match &*self.backend {
                #[cfg(feature = "postgres")]
                Backend::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(MIGRATION_LOCK)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(schema) = &self.schema {
                        // The name was checked to be a plain identifier when connecting.
                        sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query(CREATE_MIGRATIONS_TABLE)
                        .execute(&mut *tx)
                        .await?;
                    let done: Vec<i64> =
                        sqlx::query_scalar("SELECT version FROM twofactor_schema_migrations")
                            .fetch_all(&mut *tx)
                            .await?;
                    for m in POSTGRES_MIGRATIONS {
                        if !done.contains(&m.version) {
                            sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                            sqlx::query(
                                "INSERT INTO twofactor_schema_migrations (version, name) VALUES ($1, $2)",
                            )
                            .bind(m.version)
                            .bind(m.name)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    tx.commit().await
                }
                #[cfg(feature = "sqlite")]
                Backend::Sqlite(pool) => {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                    sqlx::query(CREATE_MIGRATIONS_TABLE)
                        .execute(&mut *tx)
                        .await?;
                    let done: Vec<i64> =
                        sqlx::query_scalar("SELECT version FROM twofactor_schema_migrations")
                            .fetch_all(&mut *tx)
                            .await?;
                    for m in SQLITE_MIGRATIONS {
                        if !done.contains(&m.version) {
                            sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                            sqlx::query(
                                "INSERT INTO twofactor_schema_migrations (version, name) VALUES ($1, $2)",
                            )
                            .bind(m.version)
                            .bind(m.name)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    tx.commit().await
                }
            }
        }
        .await;
        run.map_err(|e| Error::Store(store_error(e)))
    }

    /// Deletes every short-lived record that has expired by `now`, and returns how many.
    ///
    /// Expired records are already treated as absent; this only reclaims their space. Run it
    /// every few minutes (the index on `expires_at` keeps it cheap).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the database fails.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut purged = 0;
        for sql in [OTP_PURGE, USERS_PURGE] {
            purged += with_pool!(self.backend, pool => sqlx::query(sql)
                .bind(secs(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))
            .map_err(store_error)?;
        }
        Ok(purged)
    }

    /// Closes the pool; later calls fail with a [`StoreError`] of kind `Unavailable`.
    pub async fn close(&self) {
        with_pool!(self.backend, pool => pool.close().await)
    }
}

/// A timestamp as the signed integer stored, clamped to `i64::MAX`.
fn secs(t: Timestamp) -> i64 {
    clamp(t.as_unix_secs())
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::corrupt(what))
}

/// A duration as stored: whole seconds, as [`Timestamp::saturating_add`] counts them, clamped.
#[cfg(feature = "postgres")]
fn dur(d: Duration) -> i64 {
    clamp(d.as_secs())
}

/// A stored count (attempts, failures, lock level, sends).
fn count(n: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::corrupt(what))
}

/// A stored time.
fn time(n: i64) -> Result<Timestamp, StoreError> {
    unsigned(n, "a time is negative").map(Timestamp::from_unix_secs)
}

/// A count of backup codes, clamped to `u32`.
fn codes_count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
}

/// A row of [`USER_GET`].
type UserRow = (i64, i64, i64, i64, Option<i64>, i64, i64, Option<i64>);

/// The user's record from its row; the default record when there is none (or it expired).
fn user_from_row(row: Option<UserRow>) -> Result<UserState, StoreError> {
    let Some((failures, failures_until, level, locked_until, last_step, sends, sends_until, last)) =
        row
    else {
        return Ok(UserState::default());
    };
    Ok(UserState {
        failures: count(failures, "a failure count is out of range")?,
        failures_until: time(failures_until)?,
        level: count(level, "a lock level is out of range")?,
        locked_until: time(locked_until)?,
        last_step: last_step
            .map(|s| unsigned(s, "a TOTP step is negative"))
            .transpose()?,
        sends: count(sends, "a send count is out of range")?,
        sends_until: time(sends_until)?,
        last_verified_at: last.map(time).transpose()?,
    })
}

/// An enrolment record and its revision from their columns.
fn enrollment(json: String, revision: i64) -> Result<(EnrollmentRecord, Revision), StoreError> {
    let record: EnrollmentRecord = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
    Ok((record, unsigned(revision, "a revision is negative")?))
}

/// The value of a short-lived record: its bytes, or its number as decimal text.
fn otp_value(value: Option<Vec<u8>>, number: Option<i64>) -> Result<Vec<u8>, StoreError> {
    match (value, number) {
        (Some(v), _) => Ok(v),
        (None, Some(n)) => Ok(n.to_string().into_bytes()),
        (None, None) => Err(StoreError::corrupt("a short-lived record holds no value")),
    }
}

/// Maps a database failure to a [`StoreError`], keeping it as the source.
fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(e),
        sqlx::Error::PoolTimedOut => StoreError::timeout(e),
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::corrupt(e),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // PostgreSQL: connection exceptions, shutdown, too many connections.
                c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                    StoreError::unavailable(e)
                }
                // PostgreSQL: serialization failure, deadlock, lock not available, cancelled.
                "40001" | "40P01" | "55P03" | "57014" => StoreError::timeout(e),
                // SQLite: SQLITE_BUSY and SQLITE_LOCKED with their extended codes.
                c if c.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)) => {
                    StoreError::timeout(e)
                }
                _ => StoreError::other(e),
            }
        }
        _ => StoreError::other(e),
    }
}

#[async_trait]
impl OtpStore for SqlStore {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        with_pool!(self.backend, pool => sqlx::query(OTP_PUT)
            .bind(key.as_str())
            .bind(value)
            .bind(secs(expires_at))
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(store_error)
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self.backend, pool => sqlx::query(OTP_PUT_IF_ABSENT)
            .bind(key.as_str())
            .bind(value)
            .bind(secs(expires_at))
            .bind(secs(now))
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))
        .map_err(store_error)
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Option<Vec<u8>>, Option<i64>)> = with_pool!(self.backend, pool => {
            match sqlx::query(OTP_GET)
                .bind(key.as_str())
                .bind(secs(now))
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => row
                    .try_get::<Option<Vec<u8>>, _>(0)
                    .and_then(|v| Ok((v, row.try_get::<Option<i64>, _>(1)?)))
                    .map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(store_error)?;
        row.map(|(v, n)| otp_value(v, n)).transpose()
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        type Taken = (Option<Vec<u8>>, Option<i64>, i64);
        let row: Option<Taken> = with_pool!(self.backend, pool => {
            match sqlx::query(OTP_TAKE)
                .bind(key.as_str())
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => (|| -> Result<Taken, sqlx::Error> {
                    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
                })()
                .map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(store_error)?;
        match row {
            Some((v, n, expires_at)) if expires_at > secs(now) => otp_value(v, n).map(Some),
            _ => Ok(None),
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        with_pool!(self.backend, pool => sqlx::query(OTP_DELETE)
            .bind(key.as_str())
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(store_error)
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let count: Option<i64> = with_pool!(self.backend, pool => sqlx::query_scalar(OTP_INCREMENT)
            .bind(key.as_str())
            .bind(secs(expires_at))
            .bind(secs(now))
            .fetch_one(pool)
            .await)
        .map_err(store_error)?;
        let count =
            count.ok_or_else(|| StoreError::corrupt("increment on a key that holds bytes"))?;
        unsigned(count, "a counter is negative")
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self.backend, pool => sqlx::query(OTP_ADVANCE)
            .bind(key.as_str())
            .bind(clamp(value))
            .bind(secs(expires_at))
            .bind(secs(now))
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))
        .map_err(store_error)
    }

    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        composite!(self, begin_challenge(new, now))
    }

    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        composite!(self, reserve_send(user, challenge, spec, now))
    }

    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match create {
            Some((value, expires_at)) => with_pool!(self.backend, pool => sqlx::query(CODE_CREATE)
                .bind(key.as_str())
                .bind(value)
                .bind(code)
                .bind(secs(expires_at))
                .bind(secs(now))
                .execute(pool)
                .await
                .map(|_| true)),
            None => with_pool!(self.backend, pool => sqlx::query(CODE_REPLACE)
                .bind(key.as_str())
                .bind(code)
                .bind(secs(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)),
        }
        .map_err(store_error)
    }

    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        composite!(self, open_attempt(spec, now))
    }

    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        composite!(self, settle(settlement, now))
    }

    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        let row: Option<UserRow> = with_pool!(self.backend, pool => sqlx::query_as(USER_GET)
            .bind(user.as_str())
            .bind(secs(now))
            .fetch_optional(pool)
            .await)
        .map_err(store_error)?;
        Ok(rules::current(user_from_row(row)?, limits, now))
    }
}

#[async_trait]
impl EnrollmentStore for SqlStore {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        let row: Option<(String, i64)> =
            with_pool!(self.backend, pool => sqlx::query_as(ENROLLMENT_LOAD)
            .bind(user)
            .fetch_optional(pool)
            .await)
            .map_err(store_error)?;
        row.map(|(json, revision)| enrollment(json, revision))
            .transpose()
    }

    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        let revision: Option<i64> = match expected {
            None => with_pool!(self.backend, pool => sqlx::query_scalar(ENROLLMENT_INSERT)
                .bind(user)
                .bind(&json)
                .fetch_optional(pool)
                .await),
            Some(rev) => {
                let Ok(rev) = i64::try_from(rev) else {
                    return Ok(None);
                };
                with_pool!(self.backend, pool => sqlx::query_scalar(ENROLLMENT_UPDATE)
                    .bind(user)
                    .bind(&json)
                    .bind(rev)
                    .fetch_optional(pool)
                    .await)
            }
        }
        .map_err(store_error)?;
        revision
            .map(|r| unsigned(r, "a revision is negative"))
            .transpose()
    }

    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        let run: Result<(), sqlx::Error> = async {
            in_transaction!(self.backend, tx => {
                sqlx::query(CODES_DELETE).bind(user).execute(&mut *tx).await?;
                sqlx::query(ENROLLMENT_REMOVE).bind(user).execute(&mut *tx).await?;
            })
        }
        .await;
        run.map_err(store_error)
    }

    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let run: Result<(), sqlx::Error> = async {
            in_transaction!(self.backend, tx => {
                sqlx::query(CODES_DELETE).bind(user).execute(&mut *tx).await?;
                for chunk in codes.chunks(CODES_PER_INSERT) {
                    let sql = insert_codes_sql(chunk.len());
                    let mut q = sqlx::query(&sql).bind(user).bind(secs(now));
                    for c in chunk {
                        q = q.bind(c.lookup.as_slice()).bind(c.verifier.as_deref());
                    }
                    q.execute(&mut *tx).await?;
                }
            })
        }
        .await;
        run.map_err(store_error)
    }

    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        let row: Option<(Vec<u8>, Option<String>)> =
            with_pool!(self.backend, pool => sqlx::query_as(CODES_FIND)
            .bind(user)
            .bind(lookup)
            .fetch_optional(pool)
            .await)
            .map_err(store_error)?;
        Ok(row.map(|(lookup, verifier)| BackupCodeRecord::new(lookup, verifier)))
    }

    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self.backend, pool => sqlx::query(CODES_CONSUME)
            .bind(user)
            .bind(lookup)
            .bind(secs(now))
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))
        .map_err(store_error)
    }

    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        let n: i64 = with_pool!(self.backend, pool => sqlx::query_scalar(CODES_REMAINING)
            .bind(user)
            .fetch_one(pool)
            .await)
        .map_err(store_error)?;
        Ok(codes_count(n))
    }

    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        let (json, revision, remaining): (Option<String>, Option<i64>, i64) =
            with_pool!(self.backend, pool => sqlx::query_as(ENROLLMENT_LOAD_WITH_CODES)
                .bind(user)
                .fetch_one(pool)
                .await)
            .map_err(store_error)?;
        let record = match (json, revision) {
            (Some(json), Some(revision)) => Some(enrollment(json, revision)?),
            _ => None,
        };
        Ok((record, codes_count(remaining)))
    }

    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        match &*self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => {
                let (used, unused_before): (i64, i64) = sqlx::query_as(CODES_REDEEM)
                    .bind(user)
                    .bind(lookup)
                    .bind(secs(now))
                    .fetch_one(pool)
                    .await
                    .map_err(store_error)?;
                Ok((used > 0).then(|| codes_count(unused_before.saturating_sub(used))))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => sqlite::redeem_backup_code(pool, user, lookup, now).await,
        }
    }
}

/// `INSERT` of `n` backup codes: `$1` the user, `$2` the time, then lookup and verifier of each.
fn insert_codes_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO twofactor_backup_codes (user_id, lookup, verifier, created_at) VALUES ",
    );
    for i in 0..n {
        let p = 3 + 2 * i;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${p}, ${}, $2)", p + 1));
    }
    sql.push_str(" ON CONFLICT (user_id, lookup) DO NOTHING");
    sql
}

#[cfg(feature = "test-util")]
#[async_trait]
impl crate::store::conformance::Purge for SqlStore {
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        SqlStore::purge_expired(self, now).await
    }
}

#[cfg(test)]
#[path = "sql/tests.rs"]
mod backend_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_its_parameters() {
        assert_eq!(
            insert_codes_sql(2),
            "INSERT INTO twofactor_backup_codes (user_id, lookup, verifier, created_at) VALUES \
             ($1, $3, $4, $2), ($1, $5, $6, $2) ON CONFLICT (user_id, lookup) DO NOTHING"
        );
    }

    #[test]
    fn large_values_clamp() {
        assert_eq!(secs(Timestamp::MAX), i64::MAX);
        assert_eq!(clamp(7), 7);
        assert!(unsigned(-1, "x").is_err());
    }
}
