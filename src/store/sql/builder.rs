//! [`SqlStoreBuilder`]: the pool settings, the PostgreSQL schema and commit mode, and the
//! connection to either backend.

use std::fmt;
use std::time::Duration;

use super::convert::store_error;
use super::{Backend, LoginCommit, SqlStore};
use crate::error::Error;

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
    /// The default settings, for a store at `url`.
    pub(super) fn new(url: String) -> Self {
        SqlStoreBuilder {
            url,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
            commit: LoginCommit::Durable,
        }
    }

    /// The largest number of pooled connections (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a call may wait for a connection, and SQLite for a lock (default 5 s); past it
    /// the call fails with a transient [`StoreError`](crate::error::StoreError) of kind `Timeout`.
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
