//! How values are kept in the database and read back: times, counts and numbers as signed
//! 64-bit integers (clamped to `i64::MAX`), rows as records, and sqlx failures as
//! [`StoreError`]s.

#[cfg(feature = "postgres")]
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::UserState;
use crate::store::{EnrollmentRecord, Revision};

/// A timestamp as the signed integer stored, clamped to `i64::MAX`.
pub(super) fn secs(t: Timestamp) -> i64 {
    clamp(t.as_unix_secs())
}

pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn unsigned(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::corrupt(what))
}

/// A duration as stored: whole seconds, as [`Timestamp::saturating_add`] counts them, clamped.
#[cfg(feature = "postgres")]
pub(super) fn dur(d: Duration) -> i64 {
    clamp(d.as_secs())
}

/// A stored count (attempts, failures, lock level, sends).
pub(super) fn count(n: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::corrupt(what))
}

/// A stored time.
pub(super) fn time(n: i64) -> Result<Timestamp, StoreError> {
    unsigned(n, "a time is negative").map(Timestamp::from_unix_secs)
}

/// A count of backup codes, clamped to `u32`.
pub(super) fn codes_count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
}

/// A row of [`USER_GET`](super::otp::USER_GET).
pub(super) type UserRow = (i64, i64, i64, i64, Option<i64>, i64, i64, Option<i64>, i64);

/// The user's record from its row; the default record when there is none (or it expired).
pub(super) fn user_from_row(row: Option<UserRow>) -> Result<UserState, StoreError> {
    let Some((
        failures,
        failures_until,
        level,
        locked_until,
        last_step,
        sends,
        sends_until,
        last,
        epoch,
    )) = row
    else {
        return Ok(UserState::default());
    };
    Ok(UserState {
        failures: count(failures, "a failure count is out of range")?,
        failures_until: time(failures_until)?,
        level: count(level, "a lock level is out of range")?,
        locked_until: time(locked_until)?,
        last_step: last_step
            .map(|s| unsigned(s, "a TOTP step is negative"))
            .transpose()?,
        sends: count(sends, "a send count is out of range")?,
        sends_until: time(sends_until)?,
        last_verified_at: last.map(time).transpose()?,
        epoch: count(epoch, "an epoch is out of range")?,
    })
}

/// A stored epoch: NULL for a record bound to none.
pub(super) fn epoch(n: Option<i64>) -> Result<Option<u32>, StoreError> {
    n.map(|n| count(n, "an epoch is out of range")).transpose()
}

/// An enrolment record and its revision from their columns.
pub(super) fn enrollment(
    json: String,
    revision: i64,
) -> Result<(EnrollmentRecord, Revision), StoreError> {
    let record: EnrollmentRecord = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
    Ok((record, unsigned(revision, "a revision is negative")?))
}

/// The value of a short-lived record: its bytes, or its number as decimal text.
pub(super) fn otp_value(
    value: Option<Vec<u8>>,
    number: Option<i64>,
) -> Result<Vec<u8>, StoreError> {
    match (value, number) {
        (Some(v), _) => Ok(v),
        (None, Some(n)) => Ok(n.to_string().into_bytes()),
        (None, None) => Err(StoreError::corrupt("a short-lived record holds no value")),
    }
}

/// Maps a database failure to a [`StoreError`], keeping it as the source.
pub(super) fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(e),
        sqlx::Error::PoolTimedOut => StoreError::timeout(e),
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::corrupt(e),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // PostgreSQL: connection exceptions, shutdown, too many connections.
                c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                    StoreError::unavailable(e)
                }
                // PostgreSQL: serialization failure, deadlock, lock not available, cancelled.
                "40001" | "40P01" | "55P03" | "57014" => StoreError::timeout(e),
                // SQLite: SQLITE_BUSY and SQLITE_LOCKED with their extended codes.
                c if c.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)) => {
                    StoreError::timeout(e)
                }
                _ => StoreError::other(e),
            }
        }
        _ => StoreError::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_clamp() {
        assert_eq!(secs(Timestamp::MAX), i64::MAX);
        assert_eq!(clamp(7), 7);
        assert!(unsigned(-1, "x").is_err());
    }
}
