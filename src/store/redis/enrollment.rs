//! [`RedisEnrollmentStore`]: the durable factors and backup codes on Redis. Its persistence
//! requirements, layout and round trips are documented on the type.

use std::fmt;

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};
use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::connection::{store_error, Conn};
use super::otp::RedisOtpStore;
use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::store::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, Revision};

/// What is percent-encoded in a user id inside a key: `%` (so the encoding is reversible, hence
/// injective), the braces (so the hash tag is the whole id) and control characters.
const TAG_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'{').add(b'}');

/// The record hash's fields.
const RECORD: &str = "record";
const REVISION: &str = "revision";

/// `save` (`lua/enrollment_save.lua`).
const SAVE: &str = include_str!("lua/enrollment_save.lua");

/// `remove` (`lua/enrollment_remove.lua`).
const REMOVE: &str = include_str!("lua/enrollment_remove.lua");

/// An [`EnrollmentStore`] on Redis: every operation atomic in one round trip.
///
/// **WARNING: Redis without persistence loses every enrolment on a restart.** Run it with
/// `appendonly yes` and `appendfsync everysec` (about a second of writes lost in a crash) or
/// `appendfsync always` (nothing acknowledged lost), and `maxmemory-policy noeviction`; the
/// table below lists what each configuration can lose. A SQL database
/// (`SqlStore`) is the safer default for durable factors; this store is for
/// hosts that keep everything in Redis and run it durably.
///
/// Make one from a [`RedisOtpStore`] with [`RedisOtpStore::enrollment_store`] (the same
/// connection and prefix, so one Redis serves both stores), or from a connection the host
/// already has with [`RedisEnrollmentStore::from_connection`]. Cloning is cheap: clones share the
/// connection.
///
/// ```no_run
/// # async fn demo(key: &str) -> Result<(), twofactor::Error> {
/// use twofactor::{Keyring, mail::LogMailer, store::RedisOtpStore, TwoFactorService};
///
/// let otp = RedisOtpStore::builder("redis://127.0.0.1:6379")
///     .prefix("acme:2fa:")
///     .connect()
///     .await?;
/// let enrollments = otp.enrollment_store(); // Redis must persist (AOF): see above
/// let tf = TwoFactorService::builder()
///     .issuer("Acme")
///     .keys(Keyring::from_base64(key)?)
///     .otp_store(otp)
///     .enrollments(enrollments)
///     .mailer(LogMailer)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// # Persistence (read this first)
///
/// An enrolment is durable state: a TOTP secret lost is a user locked out of their account (or,
/// if the host then treats them as not enrolled, a second factor silently gone). Redis keeps it
/// only as well as it is configured to:
///
/// | Redis configuration | what a crash or restart can lose |
/// | --- | --- |
/// | no persistence (`save ""`, `appendonly no`) | **every enrolment and backup code** |
/// | RDB snapshots only (`save 900 1` …) | everything written since the last snapshot (minutes) |
/// | `appendonly yes`, `appendfsync everysec` (Redis' default once AOF is on) | about the last second of writes: a confirmed setup, a regeneration, a redeemed backup code (which becomes usable again) |
/// | `appendonly yes`, `appendfsync always` | nothing acknowledged, at the cost of an fsync per write |
///
/// Use at least `appendonly yes` with `appendfsync everysec`, and `appendfsync always` where a
/// backup code that comes back to life after a crash, or a lost enrolment, is not acceptable. Set
/// `maxmemory-policy` to `noeviction` (or a `volatile-*` policy): the keys of this store have no
/// TTL, and an `allkeys-*` policy would evict enrolments under memory pressure. A replica is
/// not a backup: writes acknowledged by the primary may not have reached it when it is promoted
/// (`WAIT` is not used). Back up the AOF or RDB files like a database.
///
/// The shared Redis the crate's own tests run against is started without persistence: it proves
/// the semantics, not the durability.
///
/// # Layout
///
/// Two hashes per user, both under the hash tag `{<user>}` (the user id with `%`, `{`, `}` and
/// control characters percent-encoded, so the tag is the whole id and nothing else), so a
/// Redis Cluster keeps them on one slot and one script or transaction reaches both:
///
/// | key | field | value |
/// | --- | --- | --- |
/// | `<prefix>enrollment:{<user>}` | `record` | the [`EnrollmentRecord`] as JSON (absent once removed) |
/// | | `revision` | the [`Revision`] of the last write, a decimal integer |
/// | `<prefix>enrollment:{<user>}:codes` | one per unused backup code: its `lookup` bytes | `-` without a verifier, `+` and the argon2id PHC string with one |
///
/// A removal deletes the `record` field and the codes but keeps counting the `revision`, so a
/// writer holding a revision from before the removal never overwrites a later enrolment (the
/// same tombstone as the SQL store's row with a NULL record; it is a few bytes per user who
/// ever enrolled). A used backup code is deleted from the hash (`HDEL`): whether a code is
/// unused is whether it is there, and the count of unused codes is `HLEN`. Nothing here has a
/// TTL.
///
/// # Round trips
///
/// Every operation is one round trip (counted on the wire by `tests/it/store_round_trips.rs`) and
/// atomic; a script's first run after Redis lost its script cache loads it once more:
///
/// | operation | Redis |
/// | --- | --- |
/// | `load` | `HMGET` |
/// | `save` | one Lua script: compare the revision, then `HINCRBY` and `HSET` |
/// | `remove` | one Lua script: `DEL` the codes, `HDEL` the record and count the revision |
/// | `replace_backup_codes` | `MULTI`: `DEL`, `HSET` of the new set, `EXEC` |
/// | `find_backup_code` | `HGET` |
/// | `consume_backup_code` | `HDEL` (of N concurrent calls, one sees 1) |
/// | `backup_codes_remaining` | `HLEN` |
/// | `load_with_codes` | `MULTI`: `HMGET`, `HLEN`, `EXEC` |
/// | `redeem_backup_code` | `MULTI`: `HDEL`, `HLEN`, `EXEC` |
#[derive(Clone)]
pub struct RedisEnrollmentStore {
    conn: Conn,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    save: Script,
    remove: Script,
}

impl fmt::Debug for RedisEnrollmentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEnrollmentStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOtpStore {
    /// An [`EnrollmentStore`] on the same Redis connection, under the same prefix.
    ///
    /// **WARNING:** the enrolments are only as durable as the Redis configuration: see
    /// [`RedisEnrollmentStore`] for the persistence it needs.
    pub fn enrollment_store(&self) -> RedisEnrollmentStore {
        RedisEnrollmentStore::new(self.conn.clone(), self.prefix.clone())
    }
}

impl RedisEnrollmentStore {
    /// A store on a connection the host already has, as [`RedisOtpStore::from_connection`]:
    /// `prefix` as for [`RedisOtpStoreBuilder::prefix`](crate::store::RedisOtpStoreBuilder::prefix)
    /// ([`DEFAULT_REDIS_PREFIX`](crate::store::DEFAULT_REDIS_PREFIX) for the default).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a prefix with `{` or `}`.
    pub fn from_connection(
        conn: ConnectionManager,
        prefix: impl Into<String>,
    ) -> Result<Self, Error> {
        Ok(RedisOtpStore::from_connection(conn, prefix)?.enrollment_store())
    }

    fn new(conn: Conn, prefix: String) -> Self {
        RedisEnrollmentStore {
            conn,
            prefix,
            scripts: std::sync::Arc::new(Scripts {
                save: Script::new(SAVE),
                remove: Script::new(REMOVE),
            }),
        }
    }

    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of the user's record hash.
    fn record_key(&self, user: &str) -> String {
        record_key(&self.prefix, user)
    }

    /// The key of the user's backup-code hash.
    fn codes_key(&self, user: &str) -> String {
        let mut key = self.record_key(user);
        key.push_str(":codes");
        key
    }
}

/// `<prefix>enrollment:{<user, percent-encoded>}`.
fn record_key(prefix: &str, user: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + user.len() + 14);
    key.push_str(prefix);
    key.push_str("enrollment:{");
    key.extend(utf8_percent_encode(user, TAG_ESCAPES));
    key.push('}');
    key
}

/// Maps a Redis failure as the OTP store does, and also a `WRONGTYPE` inside a `MULTI` (which
/// the redis crate reports as a pipeline failure without a code) to a corrupt record.
fn redis_error(e: RedisError) -> StoreError {
    let wrong_type = e
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, s)| s.code() == "WRONGTYPE"));
    if wrong_type {
        return StoreError::corrupt(e);
    }
    store_error(e)
}

/// A stored code's hash value: `-`, or `+` and the verifier.
fn code_value(code: &BackupCodeRecord) -> Vec<u8> {
    match &code.verifier {
        None => b"-".to_vec(),
        Some(v) => {
            let mut out = Vec::with_capacity(1 + v.len());
            out.push(b'+');
            out.extend_from_slice(v.as_bytes());
            out
        }
    }
}

fn code_record(lookup: &[u8], value: &[u8]) -> Result<BackupCodeRecord, StoreError> {
    let verifier = match value.split_first() {
        Some((b'-', [])) => None,
        Some((b'+', v)) => Some(
            String::from_utf8(v.to_vec())
                .map_err(|_| StoreError::corrupt("a Redis backup code has a malformed verifier"))?,
        ),
        _ => return Err(StoreError::corrupt("a Redis backup code is malformed")),
    };
    Ok(BackupCodeRecord::new(lookup.to_vec(), verifier))
}

/// The record and revision from the record hash's two fields.
fn enrollment(
    record: Option<Vec<u8>>,
    revision: Option<u64>,
) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
    match (record, revision) {
        (None, _) => Ok(None),
        (Some(_), None) => Err(StoreError::corrupt(
            "a Redis enrollment record has no revision",
        )),
        (Some(json), Some(revision)) => {
            let record = serde_json::from_slice(&json).map_err(StoreError::corrupt)?;
            Ok(Some((record, revision)))
        }
    }
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl EnrollmentStore for RedisEnrollmentStore {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        let mut conn = self.conn.clone();
        let (record, revision): (Option<Vec<u8>>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.record_key(user))
            .arg(RECORD)
            .arg(REVISION)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        enrollment(record, revision)
    }

    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let json = serde_json::to_vec(record).map_err(StoreError::other)?;
        let mut conn = self.conn.clone();
        let revision: Option<u64> = self
            .scripts
            .save
            .key(self.record_key(user))
            .arg(json)
            .arg(expected.map(|r| r.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(revision)
    }

    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.scripts
            .remove
            .key(self.record_key(user))
            .key(self.codes_key(user))
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = self.codes_key(user);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&key).ignore();
        if !codes.is_empty() {
            let set = pipe.cmd("HSET").arg(&key);
            // In reverse: of two codes with one lookup, HSET keeps the later pair, so the first
            // in `codes` wins, as in the SQL store.
            for code in codes.iter().rev() {
                set.arg(code.lookup.as_slice()).arg(code_value(code));
            }
            set.ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(redis_error)
    }

    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.codes_key(user))
            .arg(lookup)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        value.map(|v| code_record(lookup, &v)).transpose()
    }

    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("HDEL")
            .arg(self.codes_key(user))
            .arg(lookup)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(removed == 1)
    }

    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("HLEN")
            .arg(self.codes_key(user))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(count(n))
    }

    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        let mut conn = self.conn.clone();
        let ((record, revision), remaining): ((Option<Vec<u8>>, Option<u64>), u64) = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(self.record_key(user))
            .arg(RECORD)
            .arg(REVISION)
            .cmd("HLEN")
            .arg(self.codes_key(user))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok((enrollment(record, revision)?, count(remaining)))
    }

    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        _now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        let key = self.codes_key(user);
        let mut conn = self.conn.clone();
        let (removed, remaining): (u64, u64) = redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(&key)
            .arg(lookup)
            .cmd("HLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok((removed == 1).then(|| count(remaining)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_map_to_distinct_keys_with_the_whole_id_as_tag() {
        let users = ["alice", "a}b", "a%7Db", "{x}", "", "é", "a\nb"];
        let keys: Vec<String> = users.iter().map(|u| record_key("p:", u)).collect();
        for (i, k) in keys.iter().enumerate() {
            let tag = crate::store::StoreKey::new(k.clone());
            let tag = tag.hash_tag().unwrap();
            assert!(!tag.contains(['{', '}']), "{k}");
            for (j, other) in keys.iter().enumerate() {
                assert_eq!(i == j, k == other, "{} and {}", users[i], users[j]);
            }
        }
        assert_eq!(keys[0], "p:enrollment:{alice}");
        assert_eq!(keys[1], "p:enrollment:{a%7Db}");
        assert_eq!(keys[2], "p:enrollment:{a%257Db}");
    }

    #[test]
    fn code_values_round_trip_and_refuse_garbage() {
        for verifier in [None, Some(String::new()), Some("$argon2id$v=19$x".into())] {
            let code = BackupCodeRecord::new(vec![0, 255, b'{'], verifier);
            assert_eq!(code_record(&code.lookup, &code_value(&code)).unwrap(), code);
        }
        for bad in [&b""[..], b"x", b"-x", &[b'+', 0xff][..]] {
            assert!(code_record(b"l", bad).is_err());
        }
    }

    #[test]
    fn a_record_without_a_revision_is_corrupt() {
        assert_eq!(enrollment(None, Some(4)).unwrap(), None);
        assert!(enrollment(Some(b"{}".to_vec()), None).is_err());
        assert!(enrollment(Some(b"not json".to_vec()), Some(1)).is_err());
        let json = serde_json::to_vec(&EnrollmentRecord::new()).unwrap();
        assert_eq!(
            enrollment(Some(json), Some(3)).unwrap(),
            Some((EnrollmentRecord::new(), 3))
        );
    }
}
