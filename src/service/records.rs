//! Enrolment records: loading a user's record, the compare-and-swap update of it, and the TOTP
//! parameters a record holds.

use super::TwoFactorService;
use crate::error::{Error, StoreError};
use crate::policy::TotpAlgorithm;
use crate::store::{EnrollmentRecord, Revision, TotpRecord};
use crate::totp::TotpParams;

impl TwoFactorService {
    pub(crate) async fn load(
        &self,
        user: &str,
    ) -> Result<(EnrollmentRecord, Option<Revision>), Error> {
        Ok(match self.inner.enrollments.load(user).await? {
            Some((rec, rev)) => (rec, Some(rev)),
            None => (EnrollmentRecord::new(), None),
        })
    }

    /// Applies `change` to the user's record with compare-and-swap, retrying on a concurrent
    /// change. `change` returns `Ok(false)` to write nothing.
    pub(crate) async fn update<F>(&self, user: &str, change: F) -> Result<EnrollmentRecord, Error>
    where
        F: FnMut(&mut EnrollmentRecord) -> Result<bool, Error>,
    {
        self.update_from(user, None, change).await
    }

    /// As [`update`](Self::update), starting from a record the caller has just loaded (saving a
    /// round trip); on a concurrent change it reloads.
    pub(crate) async fn update_from<F>(
        &self,
        user: &str,
        mut loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        mut change: F,
    ) -> Result<EnrollmentRecord, Error>
    where
        F: FnMut(&mut EnrollmentRecord) -> Result<bool, Error>,
    {
        for _ in 0..5 {
            let (mut rec, rev) = match loaded.take() {
                Some(first) => first,
                None => self.load(user).await?,
            };
            if !change(&mut rec)? {
                return Ok(rec);
            }
            if self
                .inner
                .enrollments
                .save(user, &rec, rev)
                .await?
                .is_some()
            {
                return Ok(rec);
            }
        }
        Err(Error::Store(StoreError::other(
            "enrolment record changed concurrently too often",
        )))
    }

    pub(crate) fn totp_params(rec: &TotpRecord) -> Result<TotpParams, Error> {
        Ok(TotpParams {
            algorithm: TotpAlgorithm::from_name(&rec.algorithm).ok_or(Error::Crypto)?,
            digits: rec.digits,
            period: rec.period,
        })
    }
}
