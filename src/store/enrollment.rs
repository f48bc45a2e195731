//! The [`EnrollmentStore`] trait: durable per-user factors and backup codes.

use async_trait::async_trait;

use super::records::{BackupCodeRecord, EnrollmentRecord, Revision};
use crate::clock::Timestamp;
use crate::error::StoreError;

/// Durable per-user factors and backup codes.
///
/// Writes to the [`EnrollmentRecord`] use compare-and-swap on a [`Revision`], so two concurrent
/// changes cannot silently overwrite each other. Backup codes are a set of their own whose
/// consumption is a single atomic operation.
///
/// # Implementing it
///
/// As for [`OtpStore`](crate::store::OtpStore): `#[twofactor::async_trait]` on the `impl`, and a
/// wrapper forwards the operations with defaults (`load_with_codes`, `redeem_backup_code`) too.
/// An `Arc<S>` or a `Box<dyn EnrollmentStore>` is an `EnrollmentStore` as well.
///
/// ```
/// use twofactor::{async_trait, store::BackupCodeRecord, store::EnrollmentRecord, store::EnrollmentStore, store::MemoryEnrollmentStore, store::Revision, error::StoreError, clock::Timestamp};
///
/// /// Refuses writes while the host is in maintenance; reads go through.
/// struct ReadOnlyDuringMaintenance<S> {
///     inner: S,
///     maintenance: bool,
/// }
///
/// impl<S> ReadOnlyDuringMaintenance<S> {
///     fn writable(&self) -> Result<(), StoreError> {
///         if self.maintenance {
///             return Err(StoreError::unavailable("maintenance"));
///         }
///         Ok(())
///     }
/// }
///
/// #[async_trait]
/// impl<S: EnrollmentStore> EnrollmentStore for ReadOnlyDuringMaintenance<S> {
///     async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
///         self.inner.load(user).await
///     }
///     async fn save(&self, user: &str, record: &EnrollmentRecord, expected: Option<Revision>)
///         -> Result<Option<Revision>, StoreError> {
///         self.writable()?;
///         self.inner.save(user, record, expected).await
///     }
///     async fn remove(&self, user: &str) -> Result<(), StoreError> {
///         self.writable()?;
///         self.inner.remove(user).await
///     }
///     async fn replace_backup_codes(&self, user: &str, codes: &[BackupCodeRecord], now: Timestamp)
///         -> Result<(), StoreError> {
///         self.writable()?;
///         self.inner.replace_backup_codes(user, codes, now).await
///     }
///     async fn find_backup_code(&self, user: &str, lookup: &[u8])
///         -> Result<Option<BackupCodeRecord>, StoreError> {
///         self.inner.find_backup_code(user, lookup).await
///     }
///     async fn consume_backup_code(&self, user: &str, lookup: &[u8], now: Timestamp)
///         -> Result<bool, StoreError> {
///         self.writable()?;
///         self.inner.consume_backup_code(user, lookup, now).await
///     }
///     async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
///         self.inner.backup_codes_remaining(user).await
///     }
///     async fn load_with_codes(&self, user: &str)
///         -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
///         self.inner.load_with_codes(user).await
///     }
///     async fn redeem_backup_code(&self, user: &str, lookup: &[u8], now: Timestamp)
///         -> Result<Option<u32>, StoreError> {
///         self.writable()?;
///         self.inner.redeem_backup_code(user, lookup, now).await
///     }
/// }
///
/// let store = ReadOnlyDuringMaintenance { inner: MemoryEnrollmentStore::new(), maintenance: false };
/// let _builder = twofactor::TwoFactorService::builder().enrollments(store);
/// ```
#[async_trait]
pub trait EnrollmentStore: Send + Sync + 'static {
    /// The user's record and its revision, if the user has one.
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError>;

    /// Writes `record` if the stored revision equals `expected` (`None`: no record exists yet).
    ///
    /// Returns the new revision, or `None` when the expectation failed and nothing was written.
    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError>;

    /// Removes the user's record and all their backup codes, in one transaction where the
    /// backend has them. Removing nothing is not an error.
    async fn remove(&self, user: &str) -> Result<(), StoreError>;

    /// Replaces the user's whole backup-code set with `codes`, atomically: afterwards no old code
    /// is usable.
    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The unused backup code whose lookup equals `lookup`, if any (for argon2id-stored codes,
    /// which need their verifier checked before they are consumed).
    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError>;

    /// Marks the unused backup code with `lookup` as used. Returns whether this call did so.
    ///
    /// Under N concurrent calls with the same lookup, exactly one returns `true`.
    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// How many unused backup codes the user holds.
    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError>;

    /// The user's record and revision with the number of unused backup codes, in one call where
    /// the backend can (the default makes two).
    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        let record = self.load(user).await?;
        let remaining = self.backup_codes_remaining(user).await?;
        Ok((record, remaining))
    }

    /// Consumes the unused backup code with `lookup` and returns how many unused codes remain,
    /// or `None` when there was no such code (in one call where the backend can; the default
    /// makes two).
    ///
    /// Under N concurrent calls with the same lookup, exactly one returns `Some`.
    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        if !self.consume_backup_code(user, lookup, now).await? {
            return Ok(None);
        }
        Ok(Some(self.backup_codes_remaining(user).await?))
    }
}
