//! Enrolments and backup codes: the [`EnrollmentStore`] statements and impl of [`SqlStore`].
//! Each operation is one statement, except replacing a backup-code set and removing a user (one
//! transaction each) and, on SQLite, redeeming a code.

use async_trait::async_trait;

use super::convert::{codes_count, enrollment, secs, store_error, unsigned};
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Backend, SqlStore};
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, Revision};

/// The largest number of backup codes inserted by one statement.
const CODES_PER_INSERT: usize = 200;

const ENROLLMENT_LOAD: &str = "SELECT record, revision FROM twofactor_enrollments
WHERE user_id = $1 AND record IS NOT NULL";

/// The record (if any) and the unused backup codes, in one row.
const ENROLLMENT_LOAD_WITH_CODES: &str = "SELECT e.record, e.revision,
    (SELECT COUNT(*) FROM twofactor_backup_codes c WHERE c.user_id = $1 AND c.used_at IS NULL)
FROM (SELECT 1) AS one
LEFT JOIN twofactor_enrollments e ON e.user_id = $1 AND e.record IS NOT NULL";

const ENROLLMENT_INSERT: &str = "INSERT INTO twofactor_enrollments (user_id, record, revision)
VALUES ($1, $2, 1)
ON CONFLICT (user_id) DO UPDATE
SET record = excluded.record, revision = twofactor_enrollments.revision + 1
WHERE twofactor_enrollments.record IS NULL
RETURNING revision";

const ENROLLMENT_UPDATE: &str = "UPDATE twofactor_enrollments
SET record = $2, revision = revision + 1
WHERE user_id = $1 AND revision = $3 AND record IS NOT NULL
RETURNING revision";

const ENROLLMENT_REMOVE: &str = "UPDATE twofactor_enrollments
SET record = NULL, revision = revision + 1
WHERE user_id = $1 AND record IS NOT NULL";

const CODES_DELETE: &str = "DELETE FROM twofactor_backup_codes WHERE user_id = $1";

const CODES_FIND: &str = "SELECT lookup, verifier FROM twofactor_backup_codes
WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL";

pub(super) const CODES_CONSUME: &str = "UPDATE twofactor_backup_codes SET used_at = $3
WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL
RETURNING lookup";

pub(super) const CODES_REMAINING: &str = "SELECT COUNT(*) FROM twofactor_backup_codes
WHERE user_id = $1 AND used_at IS NULL";

/// Consumes a code and counts the unused ones, in one statement. Both counts read the snapshot
/// taken before the `UPDATE`: the remaining count is the second minus the first.
#[cfg(feature = "postgres")]
const CODES_REDEEM: &str = "WITH used AS (
    UPDATE twofactor_backup_codes SET used_at = $3
    WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM used),
    (SELECT COUNT(*) FROM twofactor_backup_codes WHERE user_id = $1 AND used_at IS NULL)";

#[async_trait]
impl EnrollmentStore for SqlStore {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        let row: Option<(String, i64)> =
            with_pool!(self.backend, pool => sqlx::query_as(ENROLLMENT_LOAD)
            .bind(user)
            .fetch_optional(pool)
            .await)
            .map_err(store_error)?;
        row.map(|(json, revision)| enrollment(json, revision))
            .transpose()
    }

    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        let revision: Option<i64> = match expected {
            None => with_pool!(self.backend, pool => sqlx::query_scalar(ENROLLMENT_INSERT)
                .bind(user)
                .bind(&json)
                .fetch_optional(pool)
                .await),
            Some(rev) => {
                let Ok(rev) = i64::try_from(rev) else {
                    return Ok(None);
                };
                with_pool!(self.backend, pool => sqlx::query_scalar(ENROLLMENT_UPDATE)
                    .bind(user)
                    .bind(&json)
                    .bind(rev)
                    .fetch_optional(pool)
                    .await)
            }
        }
        .map_err(store_error)?;
        revision
            .map(|r| unsigned(r, "a revision is negative"))
            .transpose()
    }

    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        let run: Result<(), sqlx::Error> = async {
            in_transaction!(self.backend, tx => {
                sqlx::query(CODES_DELETE).bind(user).execute(&mut *tx).await?;
                sqlx::query(ENROLLMENT_REMOVE).bind(user).execute(&mut *tx).await?;
            })
        }
        .await;
        run.map_err(store_error)
    }

    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let run: Result<(), sqlx::Error> = async {
            in_transaction!(self.backend, tx => {
                sqlx::query(CODES_DELETE).bind(user).execute(&mut *tx).await?;
                for chunk in codes.chunks(CODES_PER_INSERT) {
                    let sql = insert_codes_sql(chunk.len());
                    let mut q = sqlx::query(&sql).bind(user).bind(secs(now));
                    for c in chunk {
                        q = q.bind(c.lookup.as_slice()).bind(c.verifier.as_deref());
                    }
                    q.execute(&mut *tx).await?;
                }
            })
        }
        .await;
        run.map_err(store_error)
    }

    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        let row: Option<(Vec<u8>, Option<String>)> =
            with_pool!(self.backend, pool => sqlx::query_as(CODES_FIND)
            .bind(user)
            .bind(lookup)
            .fetch_optional(pool)
            .await)
            .map_err(store_error)?;
        Ok(row.map(|(lookup, verifier)| BackupCodeRecord::new(lookup, verifier)))
    }

    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self.backend, pool => sqlx::query(CODES_CONSUME)
            .bind(user)
            .bind(lookup)
            .bind(secs(now))
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))
        .map_err(store_error)
    }

    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        let n: i64 = with_pool!(self.backend, pool => sqlx::query_scalar(CODES_REMAINING)
            .bind(user)
            .fetch_one(pool)
            .await)
        .map_err(store_error)?;
        Ok(codes_count(n))
    }

    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        let (json, revision, remaining): (Option<String>, Option<i64>, i64) =
            with_pool!(self.backend, pool => sqlx::query_as(ENROLLMENT_LOAD_WITH_CODES)
                .bind(user)
                .fetch_one(pool)
                .await)
            .map_err(store_error)?;
        let record = match (json, revision) {
            (Some(json), Some(revision)) => Some(enrollment(json, revision)?),
            _ => None,
        };
        Ok((record, codes_count(remaining)))
    }

    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        match &*self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => {
                let (used, unused_before): (i64, i64) = sqlx::query_as(CODES_REDEEM)
                    .bind(user)
                    .bind(lookup)
                    .bind(secs(now))
                    .fetch_one(pool)
                    .await
                    .map_err(store_error)?;
                Ok((used > 0).then(|| codes_count(unused_before.saturating_sub(used))))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => sqlite::redeem_backup_code(pool, user, lookup, now).await,
        }
    }
}

/// `INSERT` of `n` backup codes: `$1` the user, `$2` the time, then lookup and verifier of each.
fn insert_codes_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO twofactor_backup_codes (user_id, lookup, verifier, created_at) VALUES ",
    );
    for i in 0..n {
        let p = 3 + 2 * i;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${p}, ${}, $2)", p + 1));
    }
    sql.push_str(" ON CONFLICT (user_id, lookup) DO NOTHING");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_its_parameters() {
        assert_eq!(
            insert_codes_sql(2),
            "INSERT INTO twofactor_backup_codes (user_id, lookup, verifier, created_at) VALUES \
             ($1, $3, $4, $2), ($1, $5, $6, $2) ON CONFLICT (user_id, lookup) DO NOTHING"
        );
    }
}
