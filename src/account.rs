//! What an account holds and shows, beyond the login: its [`Status`], backup codes
//! ([`BackupCodeSet`], [`BackupCodeHashing`]), trusted devices ([`DeviceToken`],
//! [`TrustedDevice`]), a pending recovery ([`RecoveryProgress`]), and password hashing for hosts
//! that have none ([`hash_password`], [`verify_password`]).
//!
//! The calls that act on these live on the service's handles: [`TwoFactorService::account`],
//! [`TwoFactorService::backup_codes`], [`TwoFactorService::devices`],
//! [`TwoFactorService::recovery`].
//!
//! ```
//! use twofactor::account::{hash_password, verify_password};
//!
//! let phc = hash_password("correct horse battery staple")?;
//! assert!(verify_password("correct horse battery staple", &phc));
//! assert!(!verify_password("wrong", &phc));
//! # Ok::<(), twofactor::Error>(())
//! ```
//!
//! [`TwoFactorService::account`]: crate::TwoFactorService::account
//! [`TwoFactorService::backup_codes`]: crate::TwoFactorService::backup_codes
//! [`TwoFactorService::devices`]: crate::TwoFactorService::devices
//! [`TwoFactorService::recovery`]: crate::TwoFactorService::recovery

pub use crate::backup::BackupCodeSet;
pub use crate::devices::{DeviceToken, DeviceTrust, TrustedDevice, MAX_DEVICE_LABEL};
pub use crate::password::{hash_password, verify_password};
pub use crate::policy::BackupCodeHashing;
pub use crate::recovery::RecoveryProgress;
pub use crate::status::Status;
