//! How a [`RedisOtpStore`] reaches Redis: the connection to one server (or, with the feature
//! `redis-cluster`, to a cluster), the builder that makes it with its timeouts and reconnection,
//! and how a Redis failure becomes a [`StoreError`].

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use super::otp::RedisOtpStore;
use super::scripts::Scripts;
use super::DEFAULT_REDIS_PREFIX;
use crate::error::{Error, StoreError};

/// How the store reaches Redis: one server, or a cluster (feature `redis-cluster`). Both
/// multiplex their calls and reconnect by themselves; clones share the connections.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(std::sync::Arc<super::cluster::Cluster>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => Box::pin(async move {
                let result = h.connection().req_packed_command(cmd).await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => Box::pin(async move {
                let result = h
                    .connection()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => h.connection().get_db(),
        }
    }
}

/// Configures and connects a [`RedisOtpStore`]; made by [`RedisOtpStore::builder`].
pub struct RedisOtpStoreBuilder {
    pub(super) url: String,
    /// The seed nodes of a cluster; empty for a single server at `url`.
    #[cfg(feature = "redis-cluster")]
    pub(super) nodes: Vec<String>,
    pub(super) prefix: String,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) reconnect_attempts: usize,
}

impl fmt::Debug for RedisOtpStoreBuilder {
    // The URL may hold a password: it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOtpStoreBuilder")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_attempts", &self.reconnect_attempts)
            .finish()
    }
}

impl RedisOtpStoreBuilder {
    /// The prefix put before every key (default [`DEFAULT_REDIS_PREFIX`]).
    ///
    /// Give each application (or each environment) sharing one Redis its own prefix. It may not
    /// contain `{` or `}`: the hash tag of a key must come from the key itself.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its answer (default 2 s); past it the call fails with
    /// a transient [`StoreError`] of kind `Timeout`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times a lost connection is retried, with exponential backoff, before a call
    /// fails (default 2). Later calls start reconnecting again.
    pub fn reconnect_attempts(mut self, attempts: usize) -> Self {
        self.reconnect_attempts = attempts;
        self
    }

    /// Connects to Redis.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a malformed URL or a prefix with `{` or `}`;
    /// [`Error::Store`] when the server cannot be reached or does not answer in time.
    pub async fn connect(self) -> Result<RedisOtpStore, Error> {
        check_prefix(&self.prefix)?;
        let conn = self.connection().await?;
        RedisOtpStore::with_conn(conn, self.prefix)
    }
}

/// A key prefix may not hold a hash tag: the tag of a key must come from the key itself.
fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.contains(['{', '}']) {
        return Err(Error::InvalidConfig(
            "the Redis key prefix may not contain `{` or `}`".into(),
        ));
    }
    Ok(())
}

impl RedisOtpStoreBuilder {
    async fn connection(&self) -> Result<Conn, Error> {
        #[cfg(feature = "redis-cluster")]
        if !self.nodes.is_empty() {
            return self.cluster_connection().await;
        }
        // The error text of a bad URL may quote the URL and its password: not passed on.
        let client = redis::Client::open(self.url.as_str())
            .map_err(|_| Error::InvalidConfig("the Redis URL is not valid".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_attempts)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Conn::Single(conn))
    }
}

impl RedisOtpStore {
    /// A builder for a store at `url` (`redis://host:port/db`, `rediss://` for TLS is not
    /// enabled in this build).
    pub fn builder(url: impl Into<String>) -> RedisOtpStoreBuilder {
        RedisOtpStoreBuilder {
            url: url.into(),
            #[cfg(feature = "redis-cluster")]
            nodes: Vec::new(),
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            reconnect_attempts: 2,
        }
    }

    /// Connects to `url` with the default prefix and timeouts.
    ///
    /// # Errors
    ///
    /// As [`RedisOtpStoreBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect().await
    }

    /// A store on a connection the host already has, so it opens no second one. The
    /// connection's own timeouts and reconnection settings apply; `prefix` is as for
    /// [`RedisOtpStoreBuilder::prefix`] ([`DEFAULT_REDIS_PREFIX`] for the default). The
    /// connection must come from the `redis` crate version this crate uses (1.x).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::{store::RedisOtpStore, store::DEFAULT_REDIS_PREFIX};
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?; // the host's, shared
    /// let store = RedisOtpStore::from_connection(conn.clone(), DEFAULT_REDIS_PREFIX)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a prefix with `{` or `}`.
    pub fn from_connection(
        conn: ConnectionManager,
        prefix: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::with_conn(Conn::Single(conn), prefix)
    }

    /// The store on a connection made or given: the prefix checked, the scripts prepared.
    fn with_conn(conn: Conn, prefix: impl Into<String>) -> Result<Self, Error> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        Ok(RedisOtpStore {
            conn,
            prefix,
            scripts: std::sync::Arc::new(Scripts::new()),
        })
    }

    /// How many times the cluster connection was replaced after it stopped answering (see
    /// [`cluster_builder`](Self::cluster_builder)); 0 on a single server.
    pub fn connection_renewals(&self) -> u64 {
        match &self.conn {
            Conn::Single(_) => 0,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => h.renewals(),
        }
    }
}

/// Maps a Redis failure to a [`StoreError`], keeping it as the source.
pub(super) fn store_error(e: RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::timeout(e);
    }
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        return StoreError::unavailable(e);
    }
    // During a resharding a script can reach a node that no longer (or not yet) serves its
    // slot. Every key of a script shares one slot, so Redis refuses its first key access,
    // before any write: the call did nothing, and a retry reaches the right node.
    if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && e.detail().is_some_and(|d| d.contains("non local key"))
    {
        return StoreError::unavailable(e);
    }
    // A record of the other layout under the key: a string where a composite operation keeps a
    // hash, or the reverse.
    if e.code() == Some("WRONGTYPE") {
        return StoreError::corrupt(e);
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => StoreError::unavailable(e),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::corrupt(e),
        _ => StoreError::other(e),
    }
}
