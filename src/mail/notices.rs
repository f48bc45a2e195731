//! Security notices to the account's own contact: the address or number the host keeps for the
//! account, which may be neither of its two-factor channels.

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::DeliveryError;

/// What the account's owner must hear about, whatever factors they have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountNotice {
    /// Somebody with the password asked to turn two-factor authentication off; it happens then,
    /// unless the owner signs in with a factor (or the host cancels it) first.
    RecoveryRequested {
        /// When the recovery takes effect.
        effective_at: Timestamp,
    },
    /// The reminder, [`Policy::recovery_reminder`](crate::Policy::recovery_reminder) before the
    /// recovery takes effect.
    RecoveryReminder {
        /// When the recovery takes effect.
        effective_at: Timestamp,
    },
}

/// Delivers [`AccountNotice`]s to the account's own contact, through the host's address book
/// (its users table, its notification service). Set it with
/// [`ServiceBuilder::account_notices`](crate::service::ServiceBuilder::account_notices).
///
/// A user whose only factors are an authenticator app or a security key has no address the
/// crate knows: without this hook such a user could not be told that somebody asked to remove
/// their factors, so [`recovery().request`](crate::service::Recovery::request) refuses with
/// [`Error::NoNoticeChannel`](crate::Error::NoNoticeChannel). Where the hook is the only
/// channel, its error refuses the request too (nothing is scheduled); beside an email or phone
/// factor it is best effort.
///
/// ```
/// use twofactor::async_trait;
/// use twofactor::error::DeliveryError;
/// use twofactor::mail::{AccountNotice, AccountNotices};
///
/// /// Writes to the outbox of the host's own mail system.
/// struct Outbox;
///
/// #[async_trait]
/// impl AccountNotices for Outbox {
///     async fn send(&self, user: &str, notice: &AccountNotice) -> Result<(), DeliveryError> {
///         match notice {
///             AccountNotice::RecoveryRequested { effective_at } => {
///                 // Look the user's address up, and send: "a request to turn off two-factor
///                 // authentication takes effect at {effective_at}; sign in to cancel it".
///                 let _ = (user, effective_at);
///             }
///             _ => {}
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait AccountNotices: Send + Sync + 'static {
    /// Sends `notice` about `user` to the account's own contact.
    ///
    /// # Errors
    /// A [`DeliveryError`] when the notice could not be handed over (no contact on file is a
    /// permanent one).
    async fn send(&self, user: &str, notice: &AccountNotice) -> Result<(), DeliveryError>;
}

#[async_trait]
impl<T: AccountNotices + ?Sized> AccountNotices for std::sync::Arc<T> {
    async fn send(&self, user: &str, notice: &AccountNotice) -> Result<(), DeliveryError> {
        (**self).send(user, notice).await
    }
}
