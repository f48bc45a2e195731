//! [`RedisOtpStore`] and its [`OtpStore`] implementation: each primitive one command or one
//! script, each composite operation one script (the round trips are listed in the module docs).

use std::fmt;

use ::redis::{ScriptInvocation, Value};
use async_trait::async_trait;

use super::connection::{store_error, Conn};
use super::record::{decode_live, digits, encode, ttl_ms, TAG_BYTES, TAG_NUMBER};
use super::reply::Reply;
use super::scripts::{lua_num, lua_secs, lua_time, Scripts};
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{
    AttemptSpec, Begun, ChallengeState, NewChallenge, OpenAttempt, Opened, Outcome, Reserved,
    SendSpec, Settled, Settlement, UserLimits, UserState,
};
use crate::store::{OtpStore, StoreKey};

/// An [`OtpStore`] on Redis: every primitive and every composite operation atomic in one round
/// trip, shared by all instances.
///
/// Cloning is cheap and clones share one multiplexed connection, which reconnects by itself
/// after the server went away. While Redis is unreachable every call fails with a transient
/// [`StoreError`], and the service fails closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::Error> {
/// use twofactor::store::RedisOtpStore;
///
/// let store = RedisOtpStore::builder("redis://127.0.0.1:6379")
///     .prefix("acme:2fa:")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisOtpStore {
    pub(super) conn: Conn,
    pub(super) prefix: String,
    pub(super) scripts: std::sync::Arc<Scripts>,
}

impl fmt::Debug for RedisOtpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOtpStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOtpStore {
    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn full_key(&self, key: &StoreKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }

    /// Runs one composite script: one round trip (`EVALSHA`; after a server restart the script
    /// is loaded once more).
    async fn run(&self, call: &ScriptInvocation<'_>) -> Result<Reply, StoreError> {
        let mut conn = self.conn.clone();
        let value: Value = call.invoke_async(&mut conn).await.map_err(store_error)?;
        Reply::parse(value)
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

    // ---- composite operations: one script each (see the module docs) -------------------------

    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        let mut call = self.scripts.begin_challenge.prepare_invoke();
        call.key(self.full_key(new.user))
            .key(self.full_key(new.challenge))
            .arg(lua_time(now))
            .arg(lua_secs(new.limits.failure_window))
            .arg(lua_secs(new.limits.retention))
            .arg(new.value)
            .arg(lua_time(new.expires_at))
            .arg(if new.send_required { "1" } else { "0" });
        if let Some((spec, code)) = &new.send {
            call.key(self.full_key(spec.cooldown))
                .arg(*code)
                .arg(lua_time(spec.cooldown_until))
                .arg(spec.max_sends)
                .arg(lua_secs(spec.send_window));
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "locked" => Ok(Begun::Locked {
                until: reply.time()?,
            }),
            "refused" => {
                let kind = reply.word()?;
                Ok(Begun::SendRefused(reply.refusal(&kind)?))
            }
            "collision" => Ok(Begun::Collision),
            "created" => {
                let send = match reply.word()?.as_str() {
                    "none" => None,
                    "granted" => Some(Ok(())),
                    kind => Some(Err(reply.refusal(kind)?)),
                };
                Ok(Begun::Created { send })
            }
            _ => reply.unexpected(),
        }
    }

    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        let mut call = self.scripts.reserve_send.prepare_invoke();
        call.key(self.full_key(user))
            .key(self.full_key(spec.cooldown))
            .arg(lua_time(now))
            .arg(lua_time(spec.cooldown_until))
            .arg(spec.max_sends)
            .arg(lua_secs(spec.send_window));
        if let Some(challenge) = challenge {
            call.key(self.full_key(challenge));
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "nochallenge" => Ok(Reserved::NoChallenge),
            "granted" => Ok(Reserved::Granted(reply.opt_bytes()?)),
            "cooldown" | "capped" => {
                let kind = std::mem::take(&mut reply.outcome);
                Ok(Reserved::Refused(reply.refusal(&kind)?))
            }
            _ => reply.unexpected(),
        }
    }

    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut call = self.scripts.store_code.prepare_invoke();
        call.key(self.full_key(key)).arg(lua_time(now)).arg(code);
        match create {
            Some((value, expires_at)) => call.arg("1").arg(value).arg(lua_time(expires_at)),
            None => call.arg("0"),
        };
        let reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "stored" => Ok(true),
            "missing" => Ok(false),
            _ => reply.unexpected(),
        }
    }

    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        let mut call = self.scripts.open_attempt.prepare_invoke();
        call.key(self.full_key(spec.user))
            .arg(lua_time(now))
            .arg(spec.limits.threshold)
            .arg(lua_secs(spec.limits.failure_window))
            .arg(lua_secs(spec.limits.retention));
        if let Some((challenge, max_attempts)) = spec.challenge {
            call.key(self.full_key(challenge)).arg(max_attempts);
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "nochallenge" => Ok(Opened::NoChallenge),
            "exhausted" => Ok(Opened::Exhausted),
            "locked" => Ok(Opened::Locked {
                until: reply.opt_time()?,
            }),
            "open" => {
                let attempts = reply.count()?;
                let failures = reply.count()?;
                let level = reply.count()?;
                let challenge = match spec.challenge {
                    Some(_) => Some(ChallengeState {
                        value: reply.bytes()?,
                        code: reply.opt_bytes()?,
                        attempts,
                        expires_at: reply.time()?,
                        epoch: reply.opt_count()?,
                    }),
                    None => None,
                };
                Ok(Opened::Open(OpenAttempt {
                    challenge,
                    attempts,
                    failures,
                    level,
                }))
            }
            _ => reply.unexpected(),
        }
    }

    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        let mut call = self.scripts.settle.prepare_invoke();
        call.key(self.full_key(settlement.user))
            .arg(lua_time(now))
            .arg(lua_secs(settlement.limits.failure_window))
            .arg(lua_secs(settlement.limits.retention));
        match settlement.outcome {
            Outcome::Passed { totp_step } => {
                let step = totp_step.map(|s| lua_num(s).to_string());
                call.arg("pass").arg(step.unwrap_or_default());
            }
            Outcome::Failed => {
                call.arg("failed");
            }
            Outcome::Lock { until, level } => {
                call.arg("lock").arg(lua_time(until)).arg(level);
            }
        }
        if let Some(challenge) = settlement.challenge {
            call.key(self.full_key(challenge));
        }
        let reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "done" => Ok(Settled::Done),
            "gone" => Ok(Settled::ChallengeGone),
            "replayed" => Ok(Settled::Replayed),
            _ => reply.unexpected(),
        }
    }

    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        let mut call = self.scripts.user_state.prepare_invoke();
        call.key(self.full_key(user))
            .arg(lua_time(now))
            .arg(lua_secs(limits.failure_window));
        let mut reply = self.run(&call).await?;
        if reply.outcome != "user" {
            return reply.unexpected();
        }
        Ok(UserState {
            failures: reply.count()?,
            failures_until: reply.time()?,
            level: reply.count()?,
            locked_until: reply.time()?,
            last_step: reply.opt_num()?,
            sends: reply.count()?,
            sends_until: reply.time()?,
            last_verified_at: reply.opt_time()?,
            epoch: reply.count()?,
        })
    }

    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let mut call = self.scripts.end_challenges.prepare_invoke();
        call.key(self.full_key(user))
            .arg(lua_time(now))
            .arg(lua_secs(limits.failure_window))
            .arg(lua_secs(limits.retention));
        let mut reply = self.run(&call).await?;
        if reply.outcome != "epoch" {
            return reply.unexpected();
        }
        reply.count()
    }
}
