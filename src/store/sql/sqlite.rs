//! The composite [`OtpStore`](crate::store::OtpStore) operations on SQLite: each one is one transaction
//! on one connection. It begins with `BEGIN IMMEDIATE`, so the database's write lock is held
//! from the first read; reads the rows; applies the [`rules`]; writes back what changed and
//! commits. SQLite runs in the process, so its statements cost no network round trip.

use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool, Transaction};

use super::convert::{codes_count, count, epoch, secs, store_error, time, user_from_row, UserRow};
use super::enrollment::{CODES_CONSUME, CODES_REMAINING};
use super::otp::OTP_DELETE;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{
    rules, AttemptSpec, Begun, ChallengeState, NewChallenge, Opened, Outcome, Reserved, SendSpec,
    Settled, Settlement, UserLimits, UserState,
};
use crate::store::StoreKey;

const CHALLENGE_GET: &str = "SELECT value, code, number, expires_at, epoch FROM twofactor_otp
WHERE key = $1 AND expires_at > $2";

/// A new challenge, stamped with the user's epoch, unless a live record holds its key.
const CHALLENGE_CREATE: &str = "INSERT INTO twofactor_otp (key, value, number, code, expires_at,
    epoch)
VALUES ($1, $2, 0, $3, $4, $6)
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, number = 0, code = excluded.code, expires_at = excluded.expires_at,
    epoch = excluded.epoch
WHERE twofactor_otp.expires_at <= $5
RETURNING key";

const ATTEMPTS_SET: &str = "UPDATE twofactor_otp SET number = $2 WHERE key = $1";

const COOLDOWN_GET: &str = "SELECT expires_at FROM twofactor_otp
WHERE key = $1 AND expires_at > $2";

/// A cooldown: its end as the record's number and expiry.
const COOLDOWN_PUT: &str = "INSERT INTO twofactor_otp (key, value, number, code, expires_at)
VALUES ($1, NULL, $2, NULL, $2)
ON CONFLICT (key) DO UPDATE
SET value = NULL, number = excluded.number, code = NULL, expires_at = excluded.expires_at";

/// `USER_GET` with the record's expiry.
const USER_GET_WITH_EXPIRY: &str = "SELECT failures, failures_until, level, locked_until,
    last_step, sends, sends_until, last_verified_at, epoch, expires_at
FROM twofactor_users WHERE key = $1 AND expires_at > $2";

const USER_PUT: &str = "INSERT INTO twofactor_users (key, failures, failures_until, level,
    locked_until, last_step, sends, sends_until, last_verified_at, epoch, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $10)
ON CONFLICT (key) DO UPDATE SET
    failures = excluded.failures,
    failures_until = excluded.failures_until,
    level = excluded.level,
    locked_until = excluded.locked_until,
    last_step = excluded.last_step,
    sends = excluded.sends,
    sends_until = excluded.sends_until,
    last_verified_at = excluded.last_verified_at,
    epoch = excluded.epoch,
    expires_at = excluded.expires_at";

/// A transaction holding the write lock from its start.
async fn immediate(pool: &SqlitePool) -> Result<Transaction<'static, sqlx::Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_error)
}

async fn commit<T>(tx: Transaction<'static, sqlx::Sqlite>, out: T) -> Result<T, StoreError> {
    tx.commit().await.map_err(store_error)?;
    Ok(out)
}

/// The user's record (the default one when there is none, or it expired) and its expiry
/// (`EPOCH` then).
async fn load_user(
    conn: &mut SqliteConnection,
    key: &StoreKey,
    now: Timestamp,
) -> Result<(UserState, Timestamp), StoreError> {
    type Row = (
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        i64,
        i64,
        Option<i64>,
        i64,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(USER_GET_WITH_EXPIRY)
        .bind(key.as_str())
        .bind(secs(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    match row {
        Some((a, b, c, d, e, f, g, h, epoch, expires_at)) => {
            let row: UserRow = (a, b, c, d, e, f, g, h, epoch);
            Ok((user_from_row(Some(row))?, time(expires_at)?))
        }
        None => Ok((UserState::default(), Timestamp::EPOCH)),
    }
}

/// Writes the user's record, to expire at `expires_at` (the caller passes the later of the new
/// expiry and the one the record had: a write never shortens a record).
async fn save_user(
    conn: &mut SqliteConnection,
    key: &StoreKey,
    user: &UserState,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(USER_PUT)
        .bind(key.as_str())
        .bind(i64::from(user.failures))
        .bind(secs(user.failures_until))
        .bind(i64::from(user.level))
        .bind(secs(user.locked_until))
        .bind(user.last_step.map(super::convert::clamp))
        .bind(i64::from(user.sends))
        .bind(secs(user.sends_until))
        .bind(user.last_verified_at.map(secs))
        .bind(secs(expires_at))
        .bind(i64::from(user.epoch))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

async fn load_challenge(
    conn: &mut SqliteConnection,
    key: &StoreKey,
    now: Timestamp,
) -> Result<Option<ChallengeState>, StoreError> {
    type Row = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<i64>,
        i64,
        Option<i64>,
    );
    let row: Option<Row> = sqlx::query_as(CHALLENGE_GET)
        .bind(key.as_str())
        .bind(secs(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|(value, code, attempts, expires_at, stamp)| {
        Ok(ChallengeState {
            value: value.unwrap_or_default(),
            code,
            attempts: count(attempts.unwrap_or(0), "an attempt count is out of range")?,
            expires_at: time(expires_at)?,
            epoch: epoch(stamp)?,
        })
    })
    .transpose()
}

/// The end of the live cooldown under `key`, if any.
async fn cooldown(
    conn: &mut SqliteConnection,
    key: &StoreKey,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let until: Option<i64> = sqlx::query_scalar(COOLDOWN_GET)
        .bind(key.as_str())
        .bind(secs(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    until.map(time).transpose()
}

async fn start_cooldown(
    conn: &mut SqliteConnection,
    spec: &SendSpec<'_>,
) -> Result<(), StoreError> {
    sqlx::query(COOLDOWN_PUT)
        .bind(spec.cooldown.as_str())
        .bind(secs(spec.cooldown_until))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

pub(super) async fn begin_challenge(
    pool: &SqlitePool,
    new: &NewChallenge<'_>,
    now: Timestamp,
) -> Result<Begun, StoreError> {
    let mut tx = immediate(pool).await?;
    let out = begin_in(&mut tx, new, now).await?;
    commit(tx, out).await
}

async fn begin_in(
    conn: &mut SqliteConnection,
    new: &NewChallenge<'_>,
    now: Timestamp,
) -> Result<Begun, StoreError> {
    let (user, user_expires) = load_user(conn, new.user, now).await?;
    let mut user = rules::current(user, &new.limits, now);
    if let Some(until) = rules::locked(&user, now) {
        return Ok(Begun::Locked { until });
    }
    let send = match &new.send {
        Some((spec, _)) => {
            let cooldown = cooldown(conn, spec.cooldown, now).await?;
            Some(rules::reserve(&mut user, cooldown, spec, now))
        }
        None => None,
    };
    if let (true, Some(Err(refused))) = (new.send_required, send) {
        return Ok(Begun::SendRefused(refused));
    }
    let granted = match (&new.send, send) {
        (Some((spec, code)), Some(Ok(()))) => Some((spec, *code)),
        _ => None,
    };
    let created = sqlx::query(CHALLENGE_CREATE)
        .bind(new.challenge.as_str())
        .bind(new.value)
        .bind(granted.map(|(_, code)| code))
        .bind(secs(new.expires_at))
        .bind(secs(now))
        .bind(i64::from(user.epoch))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?
        .is_some();
    if !created {
        // Nothing was created, so nothing is reserved either.
        return Ok(Begun::Collision);
    }
    let keep = rules::keep_for_challenge(&user, user_expires, new.expires_at);
    if let Some((spec, _)) = granted {
        start_cooldown(conn, spec).await?;
    }
    if granted.is_some() || keep.is_some() {
        let expires_at = rules::user_expires_at(&user, &new.limits, now)
            .max(user_expires)
            .max(keep.unwrap_or(Timestamp::EPOCH));
        save_user(conn, new.user, &user, expires_at).await?;
    }
    Ok(Begun::Created { send })
}

/// The limits `reserve_send` goes by, which is given none: failures and sends lapse as
/// [`rules::current`] says, the lock level is kept as stored (a window that never ends).
fn without_limits() -> UserLimits {
    UserLimits::new(0, Duration::MAX, Duration::ZERO)
}

pub(super) async fn reserve_send(
    pool: &SqlitePool,
    user: &StoreKey,
    challenge: Option<&StoreKey>,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<Reserved, StoreError> {
    let mut tx = immediate(pool).await?;
    let out = reserve_in(&mut tx, user, challenge, spec, now).await?;
    commit(tx, out).await
}

async fn reserve_in(
    conn: &mut SqliteConnection,
    user_key: &StoreKey,
    challenge: Option<&StoreKey>,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<Reserved, StoreError> {
    let (user, expires_at) = load_user(conn, user_key, now).await?;
    let value = match challenge {
        Some(key) => match load_challenge(conn, key, now).await? {
            Some(ch) if rules::in_epoch(ch.epoch, &user) => Some(ch.value),
            _ => return Ok(Reserved::NoChallenge),
        },
        None => None,
    };
    let mut user = rules::current(user, &without_limits(), now);
    let cooldown = cooldown(conn, spec.cooldown, now).await?;
    if let Err(refused) = rules::reserve(&mut user, cooldown, spec, now) {
        return Ok(Reserved::Refused(refused));
    }
    start_cooldown(conn, spec).await?;
    // Kept as long as before, and to the end of the send window.
    save_user(conn, user_key, &user, expires_at.max(user.sends_until)).await?;
    Ok(Reserved::Granted(value))
}

pub(super) async fn open_attempt(
    pool: &SqlitePool,
    spec: &AttemptSpec<'_>,
    now: Timestamp,
) -> Result<Opened, StoreError> {
    let mut tx = immediate(pool).await?;
    let out = open_in(&mut tx, spec, now).await?;
    commit(tx, out).await
}

async fn open_in(
    conn: &mut SqliteConnection,
    spec: &AttemptSpec<'_>,
    now: Timestamp,
) -> Result<Opened, StoreError> {
    let (key, max) = spec.challenge.unzip();
    let mut challenge = match key {
        Some(key) => load_challenge(conn, key, now).await?,
        None => None,
    };
    let (user, user_expires) = load_user(conn, spec.user, now).await?;
    let mut user = rules::current(user, &spec.limits, now);
    let opened = rules::open(challenge.as_mut(), max, &mut user, &spec.limits, now);
    if let Opened::Open(attempt) = &opened {
        if let Some(key) = key {
            sqlx::query(ATTEMPTS_SET)
                .bind(key.as_str())
                .bind(i64::from(attempt.attempts))
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
        let expires_at = rules::user_expires_at(&user, &spec.limits, now).max(user_expires);
        save_user(conn, spec.user, &user, expires_at).await?;
    }
    Ok(opened)
}

pub(super) async fn settle(
    pool: &SqlitePool,
    settlement: &Settlement<'_>,
    now: Timestamp,
) -> Result<Settled, StoreError> {
    let mut tx = immediate(pool).await?;
    let out = settle_in(&mut tx, settlement, now).await?;
    commit(tx, out).await
}

async fn settle_in(
    conn: &mut SqliteConnection,
    settlement: &Settlement<'_>,
    now: Timestamp,
) -> Result<Settled, StoreError> {
    let passed = matches!(settlement.outcome, Outcome::Passed { .. });
    let (challenge_live, challenge_epoch) = match settlement.challenge {
        Some(key) => match load_challenge(conn, key, now).await? {
            Some(ch) => (true, ch.epoch),
            None => (false, None),
        },
        None => (true, None),
    };
    let (user, user_expires) = load_user(conn, settlement.user, now).await?;
    let mut user = rules::current(user, &settlement.limits, now);
    let settled = rules::settle(
        challenge_live,
        challenge_epoch,
        &mut user,
        settlement.outcome,
        now,
    );
    if settled == Settled::Done && settlement.outcome != Outcome::Failed {
        if let (true, Some(key)) = (passed, settlement.challenge) {
            sqlx::query(OTP_DELETE)
                .bind(key.as_str())
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
        let expires_at = rules::user_expires_at(&user, &settlement.limits, now).max(user_expires);
        save_user(conn, settlement.user, &user, expires_at).await?;
    }
    Ok(settled)
}

pub(super) async fn end_challenges(
    pool: &SqlitePool,
    user: &StoreKey,
    limits: &UserLimits,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let mut tx = immediate(pool).await?;
    let (record, user_expires) = load_user(&mut tx, user, now).await?;
    let mut record = rules::current(record, limits, now);
    let epoch = rules::end_challenges(&mut record);
    let expires_at = rules::user_expires_at(&record, limits, now).max(user_expires);
    save_user(&mut tx, user, &record, expires_at).await?;
    commit(tx, epoch).await
}

/// `EnrollmentStore::redeem_backup_code`: the consumption and the count in one transaction.
pub(super) async fn redeem_backup_code(
    pool: &SqlitePool,
    user: &str,
    lookup: &[u8],
    now: Timestamp,
) -> Result<Option<u32>, StoreError> {
    let mut tx = immediate(pool).await?;
    let used = sqlx::query(CODES_CONSUME)
        .bind(user)
        .bind(lookup)
        .bind(secs(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?
        .is_some();
    let remaining = if used {
        let n: i64 = sqlx::query_scalar(CODES_REMAINING)
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        Some(codes_count(n))
    } else {
        None
    };
    commit(tx, remaining).await
}
