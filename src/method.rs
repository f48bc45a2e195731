//! [`Method`], how a user passed the second factor, and [`Verified`], the proof of it.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// How a user passed the second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Method {
    /// A TOTP code from an authenticator app.
    Totp,
    /// A code sent by email.
    Email,
    /// A single-use backup code.
    BackupCode,
    /// A code sent by text (SMS) to a proven phone number. NIST SP 800-63B makes it a
    /// *restricted* authenticator: weaker than [`Totp`](Self::Totp) or a security key.
    Sms,
    /// A trusted device's token ([`devices().trust`](crate::service::Devices::trust)): a
    /// login completed without a code.
    TrustedDevice,
    /// A security key or passkey (WebAuthn, feature `webauthn`): a signed assertion.
    SecurityKey,
}

/// The stable name, as [`Method::as_str`]: `totp`, `email`, `sms`, `backup_code`,
/// `trusted_device` or `security_key`.
impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Method {
    /// The method's stable name: `totp`, `email`, `sms`, `backup_code`, `trusted_device` or
    /// `security_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::BackupCode => "backup_code",
            Method::TrustedDevice => "trusted_device",
            Method::Sms => "sms",
            Method::SecurityKey => "security_key",
        }
    }
}

/// Proof that a user passed the second factor. The host issues its own session from it.
///
/// Only the crate makes one, and its fields are read through accessors: a host cannot turn one
/// user's proof into another's, or make an old one look fresh, before handing it back (to
/// [`devices().trust`](crate::service::Devices::trust), say).
///
/// ```compile_fail
/// // Alice's proof cannot be made Bob's.
/// fn forge(mut alice: twofactor::Verified) -> twofactor::Verified {
///     alice.user = "bob".into();
///     alice
/// }
/// ```
///
/// Serializes as `{"user": …, "method": "totp" | "email" | "sms" | "backup_code" | "trusted_device" |
/// "security_key" | null,
/// "backup_codes_remaining": …, "verified_at": <unix seconds>, "recovery_cancelled": bool}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub(crate) user: String,
    pub(crate) method: Option<Method>,
    pub(crate) backup_codes_remaining: u32,
    pub(crate) verified_at: Timestamp,
    pub(crate) recovery_cancelled: bool,
}

impl Verified {
    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// How they passed; `None` when they have no factor enrolled and no code was asked.
    pub fn method(&self) -> Option<Method> {
        self.method
    }

    /// Unused backup codes left.
    pub fn backup_codes_remaining(&self) -> u32 {
        self.backup_codes_remaining
    }

    /// When.
    pub fn verified_at(&self) -> Timestamp {
        self.verified_at
    }

    /// Whether this pass cancelled a pending account recovery: tell the user that somebody
    /// asked to turn their two-factor authentication off, and that it will not happen.
    pub fn recovery_cancelled(&self) -> bool {
        self.recovery_cancelled
    }
}
