//! Enrolment records: loading a user's record, the compare-and-swap update of it, and the TOTP
//! parameters a record holds.

use super::TwoFactorService;
use crate::error::{Error, StoreError};
use crate::store::{EnrollmentRecord, Revision, TotpRecord};
use crate::totp::TotpAlgorithm;
use crate::totp::TotpParams;

impl TwoFactorService {
    pub(crate) async fn load(
        &self,
        user: &str,
    ) -> Result<(EnrollmentRecord, Option<Revision>), Error> {
        Ok(match self.inner.enrollments.load(user).await? {
            Some((rec, rev)) => (known(rec)?, Some(rev)),
            None => (EnrollmentRecord::new(), None),
        })
    }

    /// The user's record (a new one when there is none) and the number of unused backup codes.
    pub(crate) async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(EnrollmentRecord, u32), Error> {
        let ((rec, _), remaining) = self.load_with_codes_revised(user).await?;
        Ok((rec, remaining))
    }

    /// [`load_with_codes`](Self::load_with_codes) with the record's revision, for a caller that
    /// may go on to change it.
    pub(crate) async fn load_with_codes_revised(
        &self,
        user: &str,
    ) -> Result<((EnrollmentRecord, Option<Revision>), u32), Error> {
        let (loaded, remaining) = self.inner.enrollments.load_with_codes(user).await?;
        let loaded = match loaded {
            Some((rec, rev)) => (known(rec)?, Some(rev)),
            None => (EnrollmentRecord::new(), None),
        };
        Ok((loaded, remaining))
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
            algorithm: algorithm(&rec.algorithm)?,
            digits: rec.digits,
            period: rec.period,
        })
    }
}

/// A record of a format version this release reads; any other is refused, never read as "no
/// factor".
fn known(rec: EnrollmentRecord) -> Result<EnrollmentRecord, Error> {
    if rec.version == EnrollmentRecord::VERSION {
        Ok(rec)
    } else {
        Err(Error::Store(StoreError::corrupt(format!(
            "enrolment record of unknown version {}",
            rec.version
        ))))
    }
}

/// The TOTP algorithm a stored record names.
pub(crate) fn algorithm(name: &str) -> Result<TotpAlgorithm, Error> {
    TotpAlgorithm::from_name(name)
        .ok_or_else(|| Error::Store(StoreError::corrupt("unknown stored TOTP algorithm")))
}
