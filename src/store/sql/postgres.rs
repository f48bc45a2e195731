//! The composite [`OtpStore`](crate::store::OtpStore) operations on PostgreSQL: each one is a call of a
//! function of `migrations/postgres/0002_flow.sql` (as `0003_epoch.sql` replaced them), so one
//! statement and one round trip.

use sqlx::PgPool;

use super::convert::{clamp, count, dur, epoch, secs, store_error, time};
use super::LoginCommit;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{
    AttemptSpec, Begun, ChallengeState, NewChallenge, OpenAttempt, Opened, Outcome, Reserved,
    SendRefused, SendSpec, Settled, Settlement, UserLimits,
};
use crate::store::StoreKey;

/// A function call as a statement, in both commit modes: as is, and with `synchronous_commit`
/// off for its own transaction only (`set_config(…, true)` is local to the transaction, and a
/// statement outside `BEGIN` is one transaction, committed after it ran).
macro_rules! call {
    ($name:ident, $call:literal) => {
        pub(super) const $name: [&str; 2] = [
            concat!("SELECT * FROM ", $call),
            concat!(
                "SELECT f.* FROM ",
                $call,
                " f, set_config('synchronous_commit', 'off', true) c"
            ),
        ];
    };
}

call!(
    BEGIN_CHALLENGE,
    "twofactor_begin_challenge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
call!(
    RESERVE_SEND,
    "twofactor_reserve_send($1, $2, $3, $4, $5, $6, $7)"
);
call!(
    OPEN_ATTEMPT,
    "twofactor_open_attempt_epoch($1, $2, $3, $4, $5, $6, $7)"
);
call!(
    SETTLE,
    "twofactor_settle($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
call!(END_CHALLENGES, "twofactor_end_challenges($1, $2, $3, $4)");

/// The text of `call` for `commit`.
pub(super) fn sql(call: [&'static str; 2], commit: LoginCommit) -> &'static str {
    match commit {
        LoginCommit::Durable => call[0],
        LoginCommit::Asynchronous => call[1],
    }
}

fn unexpected(what: &str) -> StoreError {
    StoreError::corrupt(format!(
        "unexpected result from a twofactor function: {what}"
    ))
}

/// The end of a refusal, which the functions always return with it.
fn until(n: Option<i64>) -> Result<Timestamp, StoreError> {
    time(n.ok_or_else(|| unexpected("a refusal without its end"))?)
}

fn refusal(kind: &str, end: Option<i64>) -> Result<SendRefused, StoreError> {
    match kind {
        "cooldown" => Ok(SendRefused::Cooldown { until: until(end)? }),
        "capped" => Ok(SendRefused::Capped { until: until(end)? }),
        other => Err(unexpected(other)),
    }
}

pub(super) async fn begin_challenge(
    pool: &PgPool,
    commit: LoginCommit,
    new: &NewChallenge<'_>,
    now: Timestamp,
) -> Result<Begun, StoreError> {
    let spec = new.send.as_ref().map(|(spec, _)| spec);
    let (outcome, send, end): (String, Option<String>, Option<i64>) =
        sqlx::query_as(sql(BEGIN_CHALLENGE, commit))
            .bind(new.user.as_str())
            .bind(dur(new.limits.failure_window))
            .bind(dur(new.limits.retention))
            .bind(new.challenge.as_str())
            .bind(new.value)
            .bind(secs(new.expires_at))
            .bind(spec.map(|s| s.cooldown.as_str()))
            .bind(spec.map(|s| secs(s.cooldown_until)))
            .bind(spec.map(|s| i64::from(s.max_sends)))
            .bind(spec.map(|s| dur(s.send_window)))
            .bind(new.send.as_ref().map(|(_, code)| *code))
            .bind(new.send_required)
            .bind(secs(now))
            .fetch_one(pool)
            .await
            .map_err(store_error)?;
    let send = match send.as_deref() {
        None => None,
        Some("granted") => Some(Ok(())),
        Some(kind) => Some(Err(refusal(kind, end)?)),
    };
    match (outcome.as_str(), send) {
        ("created", send) => Ok(Begun::Created { send }),
        ("send_refused", Some(Err(refused))) => Ok(Begun::SendRefused(refused)),
        ("locked", None) => Ok(Begun::Locked { until: until(end)? }),
        ("collision", None) => Ok(Begun::Collision),
        (other, _) => Err(unexpected(other)),
    }
}

pub(super) async fn reserve_send(
    pool: &PgPool,
    commit: LoginCommit,
    user: &StoreKey,
    challenge: Option<&StoreKey>,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<Reserved, StoreError> {
    let (outcome, end, value): (String, Option<i64>, Option<Vec<u8>>) =
        sqlx::query_as(sql(RESERVE_SEND, commit))
            .bind(user.as_str())
            .bind(challenge.map(StoreKey::as_str))
            .bind(spec.cooldown.as_str())
            .bind(secs(spec.cooldown_until))
            .bind(i64::from(spec.max_sends))
            .bind(dur(spec.send_window))
            .bind(secs(now))
            .fetch_one(pool)
            .await
            .map_err(store_error)?;
    match outcome.as_str() {
        "granted" => Ok(Reserved::Granted(
            challenge.map(|_| value.unwrap_or_default()),
        )),
        "no_challenge" => Ok(Reserved::NoChallenge),
        kind => Ok(Reserved::Refused(refusal(kind, end)?)),
    }
}

/// A row of `twofactor_open_attempt_epoch`.
type OpenRow = (
    String,
    Option<i64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(super) async fn open_attempt(
    pool: &PgPool,
    commit: LoginCommit,
    spec: &AttemptSpec<'_>,
    now: Timestamp,
) -> Result<Opened, StoreError> {
    let (key, max) = spec.challenge.unzip();
    let (outcome, end, value, code, attempts, expires_at, failures, level, stamp): OpenRow =
        sqlx::query_as(sql(OPEN_ATTEMPT, commit))
            .bind(key.map(StoreKey::as_str))
            .bind(max.map(i64::from))
            .bind(spec.user.as_str())
            .bind(i64::from(spec.limits.threshold))
            .bind(dur(spec.limits.failure_window))
            .bind(dur(spec.limits.retention))
            .bind(secs(now))
            .fetch_one(pool)
            .await
            .map_err(store_error)?;
    let number = |n: Option<i64>, what: &'static str| count(n.unwrap_or(-1), what);
    match outcome.as_str() {
        "open" => {
            let attempts = number(attempts, "an attempt count is out of range")?;
            let challenge = match key {
                Some(_) => Some(ChallengeState {
                    value: value.unwrap_or_default(),
                    code,
                    attempts,
                    expires_at: time(expires_at.unwrap_or(-1))?,
                    epoch: epoch(stamp)?,
                }),
                None => None,
            };
            Ok(Opened::Open(OpenAttempt {
                challenge,
                attempts,
                failures: number(failures, "a failure count is out of range")?,
                level: number(level, "a lock level is out of range")?,
            }))
        }
        "no_challenge" => Ok(Opened::NoChallenge),
        "exhausted" => Ok(Opened::Exhausted),
        "locked" => Ok(Opened::Locked {
            until: end.map(time).transpose()?,
        }),
        other => Err(unexpected(other)),
    }
}

pub(super) async fn settle(
    pool: &PgPool,
    commit: LoginCommit,
    settlement: &Settlement<'_>,
    now: Timestamp,
) -> Result<Settled, StoreError> {
    let (passed, step, lock) = match settlement.outcome {
        Outcome::Passed { totp_step } => (true, totp_step.map(clamp), None),
        Outcome::Failed => (false, None, None),
        Outcome::Lock { until, level } => (false, None, Some((secs(until), i64::from(level)))),
    };
    let (outcome,): (String,) = sqlx::query_as(sql(SETTLE, commit))
        .bind(settlement.challenge.map(StoreKey::as_str))
        .bind(settlement.user.as_str())
        .bind(dur(settlement.limits.failure_window))
        .bind(dur(settlement.limits.retention))
        .bind(passed)
        .bind(step)
        .bind(lock.map(|(until, _)| until))
        .bind(lock.map(|(_, level)| level))
        .bind(secs(now))
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    match outcome.as_str() {
        "done" => Ok(Settled::Done),
        "gone" => Ok(Settled::ChallengeGone),
        "replayed" => Ok(Settled::Replayed),
        other => Err(unexpected(other)),
    }
}

/// `end_challenges`: always a durable commit, whatever the login steps use (a lost end would
/// bring the challenges it ended back).
pub(super) async fn end_challenges(
    pool: &PgPool,
    _commit: LoginCommit,
    user: &StoreKey,
    limits: &UserLimits,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let (epoch,): (i64,) = sqlx::query_as(sql(END_CHALLENGES, LoginCommit::Durable))
        .bind(user.as_str())
        .bind(dur(limits.failure_window))
        .bind(dur(limits.retention))
        .bind(secs(now))
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    count(epoch, "an epoch is out of range")
}
