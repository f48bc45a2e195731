//! The short-lived records: the [`OtpStore`] statements and impl of [`SqlStore`], and the
//! purge behind [`SqlStore::purge_expired`]. The primitives are one statement each; the
//! composite operations run in the backend's module (`postgres` or `sqlite`).

use async_trait::async_trait;
use sqlx::Row;

use super::convert::{clamp, otp_value, secs, store_error, unsigned, user_from_row, UserRow};
use super::SqlStore;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{
    rules, AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement,
    UserLimits, UserState,
};
use crate::store::{OtpStore, StoreKey};

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

pub(super) const OTP_DELETE: &str = "DELETE FROM twofactor_otp WHERE key = $1";

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
/// record is live; the record is bound to no epoch (NULL).
const CODE_CREATE: &str = "INSERT INTO twofactor_otp (key, value, number, code, expires_at, epoch)
VALUES ($1, $2, 0, $3, $4, NULL)
ON CONFLICT (key) DO UPDATE SET
    value = excluded.value,
    number = CASE WHEN twofactor_otp.expires_at > $5 THEN COALESCE(twofactor_otp.number, 0) ELSE 0 END,
    code = excluded.code,
    expires_at = excluded.expires_at,
    epoch = NULL";

/// `store_code` without `create`: the code of a live record only.
const CODE_REPLACE: &str = "UPDATE twofactor_otp SET code = $2 WHERE key = $1 AND expires_at > $3";

/// The user's record, when live (`user_state`, and the SQLite transactions).
pub(super) const USER_GET: &str =
    "SELECT failures, failures_until, level, locked_until, last_step, sends,
    sends_until, last_verified_at, epoch
FROM twofactor_users WHERE key = $1 AND expires_at > $2";

/// Deletes the expired rows of both tables of short-lived records, and counts them
/// ([`SqlStore::purge_expired`]).
pub(super) async fn purge_expired(store: &SqlStore, now: Timestamp) -> Result<u64, StoreError> {
    let mut purged = 0;
    for sql in [OTP_PURGE, USERS_PURGE] {
        purged += with_pool!(store.backend, pool => sqlx::query(sql)
            .bind(secs(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(store_error)?;
    }
    Ok(purged)
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

    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        composite!(self, end_challenges(user, limits, now))
    }
}
