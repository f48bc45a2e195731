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
/// works (`tests/cluster_reshard.rs`). So after [`TimeoutRun::RENEW_AFTER`] timeouts in a row
/// (answers in between reset the count) one caller builds a new connection and the next calls
/// use it; calls already under way finish on the old one.
pub(super) struct Cluster {
    client: ::redis::cluster::ClusterClient,
    connect_timeout: Duration,
    current: std::sync::Mutex<::redis::cluster_async::ClusterConnection>,
    timeouts: TimeoutRun,
    /// Connections built since the first.
    renewals: std::sync::atomic::AtomicU64,
}

/// The run of timeouts in a row, and whether a caller is renewing the connection.
#[derive(Default)]
struct TimeoutRun {
    in_a_row: std::sync::atomic::AtomicU32,
    renewing: std::sync::atomic::AtomicBool,
}

impl TimeoutRun {
    /// Timeouts in a row after which the connection is renewed.
    const RENEW_AFTER: u32 = 8;

    /// Notes how a call ended: `true` when this caller should renew the connection (the
    /// [`RENEW_AFTER`](Self::RENEW_AFTER)th timeout in a row, or later, with no renewal under
    /// way); it then calls [`renewed`](Self::renewed). An answer ends the run; another error
    /// leaves it as it is.
    fn note<T>(&self, result: &Result<T, RedisError>) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        match result {
            Err(e) if e.is_timeout() => {
                let n = self.in_a_row.fetch_add(1, SeqCst).saturating_add(1);
                n >= Self::RENEW_AFTER && !self.renewing.swap(true, SeqCst)
            }
            Err(_) => false,
            Ok(_) => {
                self.in_a_row.store(0, SeqCst);
                false
            }
        }
    }

    /// Ends a renewal begun by [`note`](Self::note); a successful one starts a new run.
    fn renewed(&self, ok: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        if ok {
            self.in_a_row.store(0, SeqCst);
        }
        self.renewing.store(false, SeqCst);
    }
}

impl Cluster {
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
        if !self.timeouts.note(result) {
            return;
        }
        let fresh = tokio::time::timeout(
            self.connect_timeout.saturating_mul(2),
            self.client.get_async_connection(),
        )
        .await;
        let ok = matches!(fresh, Ok(Ok(_)));
        if let Ok(Ok(fresh)) = fresh {
            match self.current.lock() {
                Ok(mut c) => *c = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
            self.renewals
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(target: "twofactor", "the Redis Cluster connection stopped answering: renewed");
        }
        self.timeouts.renewed(ok);
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
            timeouts: TimeoutRun::default(),
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

#[cfg(test)]
mod tests {
    use super::TimeoutRun;
    use ::redis::RedisError;

    fn timeout() -> Result<(), RedisError> {
        Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())
    }

    fn refused() -> Result<(), RedisError> {
        Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
    }

    /// The manual's "after 8 timeouts in a row the store builds a new one": the 8th timeout in
    /// a row asks for a renewal, not the 7th; an answer in between starts the count again;
    /// other errors neither count nor reset; one renewal at a time.
    #[test]
    fn the_eighth_timeout_in_a_row_renews_the_connection() {
        assert_eq!(TimeoutRun::RENEW_AFTER, 8);
        let run = TimeoutRun::default();
        for _ in 0..7 {
            assert!(!run.note(&timeout()));
        }
        assert!(!run.note(&Ok(())), "an answer renews nothing");
        for _ in 0..7 {
            assert!(!run.note(&timeout()));
        }
        assert!(!run.note(&refused()), "another error is no timeout");
        assert!(run.note(&timeout()), "the 8th timeout in a row renews");
        // While that renewal runs, further timeouts do not start another.
        assert!(!run.note(&timeout()));
        run.renewed(false);
        // A failed renewal leaves the run: the next timeout tries again.
        assert!(run.note(&timeout()));
        run.renewed(true);
        // A new connection starts a new run.
        for _ in 0..7 {
            assert!(!run.note(&timeout()));
        }
        assert!(run.note(&timeout()));
    }
}
