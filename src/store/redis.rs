//! [`RedisOtpStore`]: the short-lived state on Redis, shared by every instance of a host.
//!
//! # Layout
//!
//! Every record is one Redis string under `<prefix><key>`. Its value is the record's own
//! `expires_at` as 20 ASCII digits, a type byte (`b` for bytes, `n` for a number) and the payload
//! (the bytes, or the number as 20 ASCII digits). Fixed-width digits compare as text exactly as
//! the numbers do, so the Lua scripts decide expiry and "greater than" without floating point.
//!
//! Whether a record is live is decided from that stored `expires_at` and the `now` the service
//! passes in, never from the Redis clock. Redis' own expiry is only garbage collection: every
//! write sets a TTL of `expires_at - now` plus a grace period, so a record is never collected
//! while it is still live for the service, even when the host's clock and Redis' clock disagree.
//!
//! # Round trips
//!
//! | primitive | Redis |
//! | --- | --- |
//! | `put` | `SET … PX` |
//! | `put_if_absent` | one Lua script (`GET`, then `SET … PX` when absent or expired) |
//! | `get` | `GET` |
//! | `take` | `GETDEL` |
//! | `delete` | `DEL` |
//! | `increment` | one Lua script (`GET`, `SET … KEEPTTL` or `SET … PX`) |
//! | `advance` | one Lua script (`GET`, `SET … PX` when greater, absent or expired) |
//!
//! Each script touches only its one key, so all of them are safe on Redis Cluster, and the
//! `{…}` hash tag in every key keeps one user's records on one slot. Requires Redis 6.2 or later
//! (`GETDEL`, `SET … KEEPTTL`).

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};
use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::store::{OtpStore, StoreKey};

/// The key prefix used when none is configured.
pub const DEFAULT_REDIS_PREFIX: &str = "twofactor:";

/// Time a record is kept by Redis after it expired for the service: covers clock differences
/// between the host instances and Redis.
const GC_GRACE_MS: u64 = 60_000;
/// The longest Redis TTL set (ten years); longer lifetimes are clamped.
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3_600 * 1_000;
/// Width of the fixed-width decimal fields.
const DIGITS: usize = 20;
const TAG_BYTES: u8 = b'b';
const TAG_NUMBER: u8 = b'n';

/// `put_if_absent`: KEYS[1]; ARGV: now, record, ttl_ms. Returns 1 when stored, 0 otherwise.
const PUT_IF_ABSENT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// `increment`: KEYS[1]; ARGV: now, expires_at, ttl_ms. Returns the new count, or -1 when the
/// live record holds bytes.
const INCREMENT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  local n = tonumber(string.sub(cur, 22))
  if n == nil then
    return -1
  end
  if n < 9007199254740991 then
    n = n + 1
  end
  redis.call('SET', KEYS[1], string.sub(cur, 1, 21) .. string.format('%020d', n), 'KEEPTTL')
  return n
end
redis.call('SET', KEYS[1], ARGV[2] .. 'n' .. string.format('%020d', 1), 'PX', ARGV[3])
return 1
";

/// `advance`: KEYS[1]; ARGV: now, record, value, ttl_ms. Returns 1 when stored, 0 when a live
/// record holds an equal or greater number, -1 when the live record holds bytes.
const ADVANCE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  if string.sub(cur, 22) >= ARGV[3] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
return 1
";

/// An [`OtpStore`] on Redis: every primitive atomic in one round trip, shared by all instances.
///
/// Cloning is cheap and clones share one multiplexed connection, which reconnects by itself
/// after the server went away. While Redis is unreachable every call fails with a transient
/// [`StoreError`], and the service fails closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::Error> {
/// use twofactor::RedisOtpStore;
///
/// let store = RedisOtpStore::builder("redis://127.0.0.1:6379")
///     .prefix("acme:2fa:")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisOtpStore {
    conn: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    put_if_absent: Script,
    increment: Script,
    advance: Script,
}

impl fmt::Debug for RedisOtpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOtpStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Configures and connects a [`RedisOtpStore`]; made by [`RedisOtpStore::builder`].
pub struct RedisOtpStoreBuilder {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    reconnect_attempts: usize,
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
        if self.prefix.contains(['{', '}']) {
            return Err(Error::InvalidConfig(
                "the Redis key prefix may not contain `{` or `}`".into(),
            ));
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
        Ok(RedisOtpStore {
            conn,
            prefix: self.prefix,
            scripts: std::sync::Arc::new(Scripts {
                put_if_absent: Script::new(PUT_IF_ABSENT),
                increment: Script::new(INCREMENT),
                advance: Script::new(ADVANCE),
            }),
        })
    }
}

impl RedisOtpStore {
    /// A builder for a store at `url` (`redis://host:port/db`, `rediss://` for TLS is not
    /// enabled in this build).
    pub fn builder(url: impl Into<String>) -> RedisOtpStoreBuilder {
        RedisOtpStoreBuilder {
            url: url.into(),
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

    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &StoreKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }
}

/// Maps a Redis failure to a [`StoreError`], keeping it as the source.
fn store_error(e: RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::timeout(e);
    }
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        return StoreError::unavailable(e);
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

/// A fixed-width decimal field.
fn digits(n: u64) -> String {
    format!("{n:0DIGITS$}")
}

/// The Redis TTL for a record that expires at `expires_at`, seen at `now`.
fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> u64 {
    expires_at
        .as_unix_secs()
        .saturating_sub(now.as_unix_secs())
        .saturating_mul(1_000)
        .saturating_add(GC_GRACE_MS)
        .min(MAX_TTL_MS)
}

fn encode(expires_at: Timestamp, tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DIGITS + 1 + payload.len());
    v.extend_from_slice(digits(expires_at.as_unix_secs()).as_bytes());
    v.push(tag);
    v.extend_from_slice(payload);
    v
}

fn parse_digits(field: &[u8]) -> Result<u64, StoreError> {
    if field.len() != DIGITS || !field.iter().all(u8::is_ascii_digit) {
        return Err(StoreError::corrupt("a Redis record has a malformed number"));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::corrupt("a Redis record has a malformed number"))
}

/// Decodes a stored record and returns its value when it is live at `now`.
fn decode_live(raw: Option<Vec<u8>>, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let (Some(exp), Some(&tag), Some(payload)) =
        (raw.get(..DIGITS), raw.get(DIGITS), raw.get(DIGITS + 1..))
    else {
        return Err(StoreError::corrupt("a Redis record is too short"));
    };
    if parse_digits(exp)? <= now.as_unix_secs() {
        return Ok(None);
    }
    match tag {
        TAG_BYTES => Ok(Some(payload.to_vec())),
        TAG_NUMBER => Ok(Some(parse_digits(payload)?.to_string().into_bytes())),
        _ => Err(StoreError::corrupt("a Redis record has an unknown type")),
    }
}

#[async_trait]
impl OtpStore for RedisOtpStore {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.full_key(key))
            .arg(encode(expires_at, TAG_BYTES, value))
            .arg("PX")
            .arg(ttl_ms(expires_at, now))
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .scripts
            .put_if_absent
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(encode(expires_at, TAG_BYTES, value))
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(stored == 1)
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.full_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        decode_live(raw, now)
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.full_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        decode_live(raw, now)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.full_key(key))
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let count: i64 = self
            .scripts
            .increment
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(digits(expires_at.as_unix_secs()))
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        u64::try_from(count).map_err(|_| StoreError::corrupt("increment on a key that holds bytes"))
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let value = digits(value);
        let stored: i64 = self
            .scripts
            .advance
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(encode(expires_at, TAG_NUMBER, value.as_bytes()))
            .arg(value)
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        match stored {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::corrupt("advance on a key that holds bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_expire_by_now() {
        let rec = encode(Timestamp::from_unix_secs(100), TAG_BYTES, b"\x00v\xff");
        let at = |t| decode_live(Some(rec.clone()), Timestamp::from_unix_secs(t)).unwrap();
        assert_eq!(at(99).as_deref(), Some(&b"\x00v\xff"[..]));
        assert_eq!(at(100), None);
        let n = encode(Timestamp::MAX, TAG_NUMBER, digits(42).as_bytes());
        assert_eq!(
            decode_live(Some(n), Timestamp::EPOCH).unwrap().as_deref(),
            Some(&b"42"[..])
        );
    }

    #[test]
    fn fixed_width_fields_order_like_numbers() {
        assert!(digits(9) < digits(10));
        assert!(digits(u64::MAX - 1) < digits(u64::MAX));
        assert_eq!(digits(u64::MAX).len(), DIGITS);
    }

    #[test]
    fn malformed_records_are_corrupt_not_panics() {
        for raw in [
            &b""[..],
            b"123",
            b"0000000000000000000xb",
            b"00000000000000000099zv",
        ] {
            let e = decode_live(Some(raw.to_vec()), Timestamp::EPOCH).unwrap_err();
            assert_eq!(e.kind(), crate::StoreErrorKind::Corrupt);
        }
    }

    #[test]
    fn ttl_covers_the_lifetime_and_saturates() {
        let now = Timestamp::from_unix_secs(1_000);
        assert_eq!(ttl_ms(Timestamp::from_unix_secs(1_060), now), 120_000);
        assert_eq!(ttl_ms(Timestamp::from_unix_secs(10), now), GC_GRACE_MS);
        assert_eq!(ttl_ms(Timestamp::MAX, now), MAX_TTL_MS);
    }
}
