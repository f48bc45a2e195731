//! [`SqlStore`]: both stores on PostgreSQL (feature `postgres`) or SQLite (feature `sqlite`).
//!
//! The schema ships with the crate under `migrations/` and is applied by [`SqlStore::migrate`].
//! Every [`OtpStore`] primitive and every backup-code consumption is one statement, atomic on its
//! own (`INSERT … ON CONFLICT … RETURNING`, `UPDATE … WHERE used_at IS NULL RETURNING`,
//! `DELETE … RETURNING`); replacing a backup-code set and removing a user are one transaction.
//! The composite operations of [`flow`](crate::store::flow) run natively: on PostgreSQL each one is one
//! statement, a call of a PL/pgSQL function (`migrations/postgres/0002_flow.sql`, as
//! `0003_epoch.sql` replaced them); on SQLite,
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
//! | `twofactor_otp` | a short-lived record | `key`; `value` (bytes); `number` (a counter or a TOTP step); `code` (a challenge's current code); `expires_at`; `epoch` (the epoch a challenge was begun in; NULL for a pending code bound to none) |
//! | `twofactor_users` | the [`UserState`] of a user key | one column per field (`failures`, `failures_until`, `level`, `locked_until`, `last_step`, `sends`, `sends_until`, `last_verified_at`, `epoch`); `expires_at` |
//! | `twofactor_enrollments` | a user who ever enrolled | `user_id`; `record` (the [`EnrollmentRecord`] as JSON, NULL once removed); `revision` |
//! | `twofactor_backup_codes` | a backup code | `user_id`, `lookup`; `verifier`; `created_at`; `used_at` (NULL while unused) |
//! | `twofactor_schema_migrations` | an applied migration | `version`, `name` |
//!
//! For the composite operations, a challenge (or pending code) is a `twofactor_otp` row: its
//! value in `value`, its attempt count in `number`, its code in `code`. A send's cooldown is a
//! `twofactor_otp` row that expires when the cooldown ends. A user's record is a
//! `twofactor_users` row, kept as long as [`rules::user_expires_at`] says (a write never
//! shortens it); a row that has expired reads as the default record. Rows written before
//! migration 3 read as epoch 0. [`SqlStore::purge_expired`] deletes expired rows of both tables.
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
//! | `begin_challenge` | 1: `twofactor_begin_challenge` | 1 transaction, 3–7: user, *cooldown*, *insert challenge*, *cooldown*, *user* |
//! | `reserve_send` | 1: `twofactor_reserve_send` | 1 transaction, 3–7: user, *challenge*, *cooldown*, *cooldown, user* |
//! | `store_code` | 1: `INSERT … ON CONFLICT` or `UPDATE` | the same 1 |
//! | `open_attempt` | 1: `twofactor_open_attempt_epoch` | 1 transaction, 3–6: *challenge*, user, *attempts, user* |
//! | `settle` | 1: `twofactor_settle` | 1 transaction, 3–6: *challenge*, user, *delete challenge, user* |
//! | `user_state` | 1: `SELECT` | the same 1 |
//! | `end_challenges` | 1: `twofactor_end_challenges` (always a durable commit) | 1 transaction, 4: user, user |
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

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};

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
            $crate::store::sql::Backend::Postgres(pool) => {
                $crate::store::sql::postgres::$op(pool, $store.commit, $($arg),*).await
            }
            #[cfg(feature = "sqlite")]
            $crate::store::sql::Backend::Sqlite(pool) => {
                $crate::store::sql::sqlite::$op(pool, $($arg),*).await
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend the store uses. The SQL is
/// the same text for both: SQLite accepts PostgreSQL's `$1` parameters.
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match &*$backend {
            #[cfg(feature = "postgres")]
            $crate::store::sql::Backend::Postgres($pool) => $body,
            #[cfg(feature = "sqlite")]
            $crate::store::sql::Backend::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a new transaction (SQLite: `BEGIN IMMEDIATE`, so the write
/// lock is taken up front), and commits it when `$body` succeeds.
macro_rules! in_transaction {
    ($backend:expr, $tx:ident => $body:expr) => {
        match &*$backend {
            #[cfg(feature = "postgres")]
            $crate::store::sql::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            #[cfg(feature = "sqlite")]
            $crate::store::sql::Backend::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
        }
    };
}

// After the macros above, which these modules use.
mod builder;
mod convert;
mod enrollment;
mod migrate;
mod otp;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use builder::SqlStoreBuilder;

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

impl SqlStore {
    /// A builder for a store at `url`; see [`SqlStoreBuilder::connect`] for the URL forms.
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder::new(url.into())
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
        migrate::run(self)
            .await
            .map_err(|e| Error::Store(convert::store_error(e)))
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
        otp::purge_expired(self, now).await
    }

    /// Closes the pool; later calls fail with a [`StoreError`] of kind `Unavailable`.
    pub async fn close(&self) {
        with_pool!(self.backend, pool => pool.close().await)
    }
}

#[cfg(feature = "test-util")]
#[async_trait::async_trait]
impl crate::store::conformance::Purge for SqlStore {
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        SqlStore::purge_expired(self, now).await
    }
}

#[cfg(test)]
mod tests;
