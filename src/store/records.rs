//! The durable records kept by the [`EnrollmentStore`](crate::store::EnrollmentStore): one
//! [`EnrollmentRecord`] per user, with the factors inside it, and the user's backup codes.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A revision number for optimistic concurrency on an [`EnrollmentRecord`].
pub type Revision = u64;

/// The durable two-factor state of one user, except backup codes (kept by the store on their own).
///
/// Serialisable; the `version` field lets a later release migrate old records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnrollmentRecord {
    /// Record format version (currently 1).
    pub version: u32,
    /// The confirmed TOTP factor, if any.
    pub totp: Option<TotpRecord>,
    /// A TOTP setup started but not yet confirmed.
    pub pending_totp: Option<PendingTotp>,
    /// The proven email factor, if any.
    pub email: Option<EmailRecord>,
    /// When the user last passed a second-factor check.
    pub last_verified_at: Option<Timestamp>,
    /// The user's trusted devices (see [`Devices::trust`](crate::service::Devices::trust)),
    /// expired ones included until the next write drops them. Absent in older records (empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_devices: Vec<TrustedDeviceRecord>,
    /// A pending account recovery (see
    /// [`Recovery::request`](crate::service::Recovery::request)).
    /// Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryRecord>,
    /// The proven phone number of the text (SMS) factor (see
    /// [`Sms::start_setup`](crate::service::Sms::start_setup)).
    /// Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneRecord>,
    /// The user's security keys and passkeys (WebAuthn; see
    /// `SecurityKeys::start_registration`, feature `webauthn`). Kept whatever
    /// the features of the build reading the record. Absent in older records (empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_keys: Vec<SecurityKeyRecord>,
}

impl EnrollmentRecord {
    /// The format version this release writes and reads.
    pub const VERSION: u32 = 1;

    /// An empty record of the current version.
    pub fn new() -> Self {
        EnrollmentRecord {
            version: Self::VERSION,
            ..Default::default()
        }
    }

    /// Whether any second factor is enabled.
    pub fn is_enabled(&self) -> bool {
        self.has_code_factor() || !self.security_keys.is_empty()
    }

    /// Whether the user has a factor answered with a code (TOTP, email or text): what a policy
    /// that does not let a security key stand alone asks for beside keys.
    pub fn has_code_factor(&self) -> bool {
        self.totp.is_some() || self.email.is_some() || self.phone.is_some()
    }
}

/// A registered security key or passkey, kept in the [`EnrollmentRecord`].
///
/// The credential is public-key material (no secret): its JSON as the `webauthn-rs` crate writes
/// it, with the signature counter the service checks for cloned authenticators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecurityKeyRecord {
    /// The key's public id (`sk_` and 16 base64url characters), for listing and removal.
    pub id: String,
    /// The user's name for it.
    pub label: String,
    /// The credential, as JSON (public key, credential id, counter, flags).
    pub credential: String,
    /// The highest signature counter seen (0 for authenticators without one).
    pub counter: u32,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last passed a check.
    pub last_used_at: Option<Timestamp>,
    /// A short tag of the ceremony its last check answered: the same assertion sent twice is
    /// a repeat, not a counter going backwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ceremony: Option<String>,
}

impl SecurityKeyRecord {
    /// A record from its parts, never used yet.
    pub fn new(id: String, label: String, credential: String, created_at: Timestamp) -> Self {
        SecurityKeyRecord {
            id,
            label,
            credential,
            counter: 0,
            created_at,
            last_used_at: None,
            last_ceremony: None,
        }
    }
}

/// A proven phone number used as a (restricted, NIST SP 800-63B) text factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhoneRecord {
    /// The number, E.164 (masked in `Debug`).
    pub number: crate::phone::PhoneNumber,
    /// When a code sent to it was confirmed.
    pub verified_at: Timestamp,
}

impl PhoneRecord {
    /// A record from its parts.
    pub fn new(number: crate::phone::PhoneNumber, verified_at: Timestamp) -> Self {
        PhoneRecord {
            number,
            verified_at,
        }
    }
}

/// A pending account recovery, kept in the [`EnrollmentRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecoveryRecord {
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// When it turns two-factor authentication off.
    pub effective_at: Timestamp,
    /// When the reminder was sent, once.
    pub reminded_at: Option<Timestamp>,
}

impl RecoveryRecord {
    /// A recovery asked for at `requested_at`, due at `effective_at`, not yet reminded.
    pub fn new(requested_at: Timestamp, effective_at: Timestamp) -> Self {
        RecoveryRecord {
            requested_at,
            effective_at,
            reminded_at: None,
        }
    }
}

/// A TOTP factor: the secret, sealed, and its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TotpRecord {
    /// The sealed secret (an envelope naming its key id; opaque to stores).
    pub sealed_secret: Vec<u8>,
    /// Hash algorithm name: `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Digits per code (6 or 8).
    pub digits: u32,
    /// Step length in seconds.
    pub period: u64,
    /// When the setup was started.
    pub created_at: Timestamp,
    /// When a code from the app confirmed it.
    pub confirmed_at: Option<Timestamp>,
    /// Whether the setup asked for another algorithm or digits and was confirmed with SHA-1 and
    /// 6 digits instead (see [`Policy::totp_allow_sha1_fallback`](crate::Policy::totp_allow_sha1_fallback));
    /// `algorithm` and `digits` then hold what the app uses. Absent in older records (`false`).
    #[serde(default)]
    pub sha1_fallback: bool,
}

impl TotpRecord {
    /// A record from its parts.
    pub fn new(
        sealed_secret: Vec<u8>,
        algorithm: impl Into<String>,
        digits: u32,
        period: u64,
        created_at: Timestamp,
    ) -> Self {
        TotpRecord {
            sealed_secret,
            algorithm: algorithm.into(),
            digits,
            period,
            created_at,
            confirmed_at: None,
            sha1_fallback: false,
        }
    }
}

/// A TOTP setup waiting for its first code, with the backup codes that come with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PendingTotp {
    /// The secret and parameters being set up.
    pub totp: TotpRecord,
    /// Hashes of the backup codes shown at setup; installed when the setup is confirmed.
    pub backup_codes: Vec<BackupCodeRecord>,
    /// When the pending setup lapses.
    pub expires_at: Timestamp,
}

impl PendingTotp {
    /// A pending setup from its parts.
    pub fn new(
        totp: TotpRecord,
        backup_codes: Vec<BackupCodeRecord>,
        expires_at: Timestamp,
    ) -> Self {
        PendingTotp {
            totp,
            backup_codes,
            expires_at,
        }
    }
}

/// A trusted device, as kept in the [`EnrollmentRecord`]: the keyed hash of its token, never
/// the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrustedDeviceRecord {
    /// The device's public id.
    pub id: String,
    /// `HMAC-SHA256(index key, "trusted device" ‖ user ‖ token)`.
    pub mac: Vec<u8>,
    /// The host's label.
    pub label: String,
    /// When it was trusted.
    pub created_at: Timestamp,
    /// When it last signed in without a code.
    pub last_used_at: Option<Timestamp>,
    /// When its trust ends.
    pub expires_at: Timestamp,
}

impl TrustedDeviceRecord {
    /// A device record from its parts, never used yet.
    pub fn new(
        id: String,
        mac: Vec<u8>,
        label: String,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        TrustedDeviceRecord {
            id,
            mac,
            label,
            created_at,
            last_used_at: None,
            expires_at,
        }
    }
}

/// A proven email address used as a factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmailRecord {
    /// The address.
    pub address: String,
    /// When a code sent to it was confirmed.
    pub verified_at: Timestamp,
}

impl EmailRecord {
    /// A record from its parts.
    pub fn new(address: impl Into<String>, verified_at: Timestamp) -> Self {
        EmailRecord {
            address: address.into(),
            verified_at,
        }
    }
}

/// One stored backup code: never the code itself.
///
/// `lookup` is a keyed HMAC of the code (the whole 32 bytes when codes are HMAC-stored, a short
/// prefix when they are argon2id-stored); `verifier` is the argon2id PHC string in the latter case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupCodeRecord {
    /// Keyed-hash lookup value, unique within one user's set.
    pub lookup: Vec<u8>,
    /// An argon2id PHC string to check after the lookup, when codes are argon2id-stored.
    pub verifier: Option<String>,
}

impl BackupCodeRecord {
    /// A record from its parts.
    pub fn new(lookup: Vec<u8>, verifier: Option<String>) -> Self {
        BackupCodeRecord { lookup, verifier }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records written before the phone factor existed still load (every store keeps the
    /// record as JSON), and a record without a phone is written as before.
    #[test]
    fn records_without_a_phone_read_and_write_as_before() {
        let old = r#"{"version":1,"totp":null,"pending_totp":null,"email":{"address":"a@b.co","verified_at":5},"last_verified_at":null}"#;
        let rec: EnrollmentRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.phone, None);
        assert!(rec.is_enabled());
        let json = serde_json::to_string(&EnrollmentRecord::new()).unwrap();
        assert!(!json.contains("phone"), "{json}");
        let mut with = EnrollmentRecord::new();
        with.phone = Some(PhoneRecord::new(
            crate::phone::PhoneNumber::parse("+491701234567").unwrap(),
            Timestamp::from_unix_secs(7),
        ));
        assert!(with.is_enabled());
        let json = serde_json::to_string(&with).unwrap();
        assert_eq!(
            serde_json::from_str::<EnrollmentRecord>(&json).unwrap(),
            with
        );
        assert!(
            !format!("{with:?}").contains("1701234567"),
            "masked in Debug"
        );
        let bad = json.replace("+491701234567", "0170");
        assert!(serde_json::from_str::<EnrollmentRecord>(&bad).is_err());
    }
}
