//! The Redis Cluster client (feature `redis-cluster`): [`RedisOtpStore::cluster_builder`], and
//! the cluster connection that is replaced when it stops answering.

use std::time::Duration;

use ::redis::RedisError;

use super::connection::{store_error, Conn, RedisOtpStoreBuilder};
use super::otp::RedisOtpStore;
use crate::error::Error;

/// A cluster connection that is replaced when it stops answering.
///
/// The redis crate's cluster connection (1.8) can stop answering altogether after a second
/// resharding: every call then times out, on every master, for good, while a new connection
/// works (`tests/cluster_reshard.rs`). So after [`Cluster::RENEW_AFTER`] timeouts in a row
/// (answers in between reset the count) one caller builds a new connection and the next calls
/// use it; calls already under way finish on the old one.
pub(super) struct Cluster {
    client: ::redis::cluster::ClusterClient,
    connect_timeout: Duration,
    current: std::sync::Mutex<::redis::cluster_async::ClusterConnection>,
    timeouts_in_a_row: std::sync::atomic::AtomicU32,
    renewing: std::sync::atomic::AtomicBool,
    /// Connections built since the first.
    renewals: std::sync::atomic::AtomicU64,
}

impl Cluster {
    const RENEW_AFTER: u32 = 8;

    /// How many connections were built since the first.
    pub(super) fn renewals(&self) -> u64 {
        self.renewals.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(super) fn connection(&self) -> ::redis::cluster_async::ClusterConnection {
        match self.current.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Notes how a call ended, and renews the connection after enough timeouts in a row.
    pub(super) async fn after<T>(&self, result: &Result<T, RedisError>) {
        use std::sync::atomic::Ordering::SeqCst;
        match result {
            Err(e) if e.is_timeout() => {
                let n = self
                    .timeouts_in_a_row
                    .fetch_add(1, SeqCst)
                    .saturating_add(1);
                if n < Self::RENEW_AFTER || self.renewing.swap(true, SeqCst) {
                    return;
                }
                let fresh = tokio::time::timeout(
                    self.connect_timeout.saturating_mul(2),
                    self.client.get_async_connection(),
                )
                .await;
                if let Ok(Ok(fresh)) = fresh {
                    match self.current.lock() {
                        Ok(mut c) => *c = fresh,
                        Err(poisoned) => *poisoned.into_inner() = fresh,
                    }
                    self.renewals.fetch_add(1, SeqCst);
                    self.timeouts_in_a_row.store(0, SeqCst);
                    tracing::warn!(target: "twofactor", "the Redis Cluster connection stopped answering: renewed");
                }
                self.renewing.store(false, SeqCst);
            }
            Err(_) => {}
            Ok(_) => self.timeouts_in_a_row.store(0, SeqCst),
        }
    }
}

impl RedisOtpStoreBuilder {
    pub(super) async fn cluster_connection(&self) -> Result<Conn, Error> {
        // As for one server, a bad URL's error text is not passed on.
        let retries = u32::try_from(self.reconnect_attempts).unwrap_or(u32::MAX);
        let client =
            ::redis::cluster::ClusterClientBuilder::new(self.nodes.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout)
                .retries(retries)
                .min_retry_wait(50)
                .max_retry_wait(1_000)
                .build()
                .map_err(|_| {
                    Error::InvalidConfig("a Redis Cluster node URL is not valid".into())
                })?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Conn::Cluster(std::sync::Arc::new(Cluster {
            client,
            connect_timeout: self.connect_timeout,
            current: std::sync::Mutex::new(conn),
            timeouts_in_a_row: std::sync::atomic::AtomicU32::new(0),
            renewing: std::sync::atomic::AtomicBool::new(false),
            renewals: std::sync::atomic::AtomicU64::new(0),
        })))
    }
}

impl RedisOtpStore {
    /// A builder for a store on a Redis Cluster, given some of its nodes (`redis://host:port`
    /// each; the client learns the others and the slot map from them). Feature `redis-cluster`.
    ///
    /// The options of [`RedisOtpStoreBuilder`] apply; `reconnect_attempts` is how many times a
    /// call is retried after a redirection, `TRYAGAIN` or a lost connection. After 8 timeouts
    /// in a row the store builds a new cluster connection (the redis crate's can stop answering
    /// after a resharding); [`connection_renewals`](RedisOtpStore::connection_renewals) counts
    /// them.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), twofactor::Error> {
    /// use twofactor::store::RedisOtpStore;
    ///
    /// let store = RedisOtpStore::cluster_builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .prefix("acme:2fa:")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_builder(
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> RedisOtpStoreBuilder {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut builder = Self::builder(nodes.first().cloned().unwrap_or_default());
        builder.nodes = nodes;
        builder
    }
}
