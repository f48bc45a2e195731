//! The user's two-factor [`Status`], for a settings page
//! ([`Account::status`](crate::service::Account::status)).

use crate::clock::Timestamp;
use crate::error::Error;
use crate::input::check_user;
use crate::method::Method;
use crate::service::TwoFactorService;
use crate::totp::TotpAlgorithm;

/// The two-factor state of a user.
///
/// Serializes with its field names (methods by name, times in unix seconds), for a settings page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Whether any factor is enabled.
    pub enabled: bool,
    /// The enabled methods (backup codes included when any remain).
    pub methods: Vec<Method>,
    /// When the TOTP factor was confirmed.
    pub totp_confirmed_at: Option<Timestamp>,
    /// Whether a TOTP setup awaits confirmation.
    pub totp_pending: bool,
    /// The email factor's address.
    pub email: Option<String>,
    /// The phone factor's number, masked (`+49•••••••567`, see [`PhoneNumber::masked`]).
    ///
    /// [`PhoneNumber::masked`]: crate::text::PhoneNumber::masked
    pub phone: Option<String>,
    /// When the user last passed a second-factor check.
    pub last_verified_at: Option<Timestamp>,
    /// Unused backup codes.
    pub backup_codes_remaining: u32,
    /// The id of the sealing key the TOTP secret is sealed under (see [`Keyring`]'s rotation
    /// notes: an old key can leave the ring once no user reports it).
    ///
    /// [`Keyring`]: crate::Keyring
    pub totp_key_id: Option<String>,
    /// The algorithm of the enrolled TOTP factor: what the app uses, which is SHA-1 when the
    /// setup fell back to it (see [`totp_sha1_fallback`](Self::totp_sha1_fallback)).
    pub totp_algorithm: Option<TotpAlgorithm>,
    /// The digits of the enrolled TOTP factor's codes.
    pub totp_digits: Option<u32>,
    /// Whether the TOTP factor was enrolled with SHA-1 and 6 digits because the app ignored
    /// the algorithm or digits the policy asked for
    /// ([`Policy::totp_allow_sha1_fallback`](crate::Policy::totp_allow_sha1_fallback)).
    pub totp_sha1_fallback: bool,
    /// Live trusted devices (see [`Devices::list`](crate::service::Devices::list)).
    pub trusted_devices: u32,
    /// When a pending account recovery turns two-factor authentication off (see
    /// [`Recovery::request`](crate::service::Recovery::request)); a time already past takes effect at the next
    /// login or [`Recovery::process`](crate::service::Recovery::process).
    pub recovery_pending_until: Option<Timestamp>,
    /// Registered security keys and passkeys (feature `webauthn`).
    pub security_keys: u32,
}

impl TwoFactorService {
    /// [`Account::status`](crate::service::Account::status).
    pub(crate) async fn status(&self, user: &str) -> Result<Status, Error> {
        check_user(user)?;
        let now = self.now();
        let (rec, remaining) = self.load_with_codes(user).await?;
        // The last verification lives with the short-lived records; status still answers from
        // the enrolment alone when that store is down.
        let last_seen = match self
            .inner
            .otp
            .user_state(self.user_keys(user).user(), &self.limits(), now)
            .await
        {
            Ok(state) => state.last_verified_at,
            Err(e) => {
                tracing::warn!(target: "twofactor", error = %e, "reading the last verification failed");
                None
            }
        };
        let mut methods = Vec::new();
        if rec.totp.is_some() {
            methods.push(Method::Totp);
        }
        if rec.email.is_some() {
            methods.push(Method::Email);
        }
        if rec.phone.is_some() {
            methods.push(Method::Sms);
        }
        if !rec.security_keys.is_empty() {
            methods.push(Method::SecurityKey);
        }
        if rec.is_enabled() && remaining > 0 {
            methods.push(Method::BackupCode);
        }
        Ok(Status {
            enabled: rec.is_enabled(),
            methods,
            totp_confirmed_at: rec.totp.as_ref().and_then(|t| t.confirmed_at),
            totp_pending: rec
                .pending_totp
                .as_ref()
                .is_some_and(|p| p.expires_at > now),
            email: rec.email.map(|e| e.address),
            phone: rec.phone.map(|p| p.number.masked()),
            last_verified_at: rec.last_verified_at.max(last_seen),
            backup_codes_remaining: remaining,
            totp_key_id: rec
                .totp
                .as_ref()
                .and_then(|t| crate::keys::envelope_key_id(&t.sealed_secret)),
            totp_algorithm: rec
                .totp
                .as_ref()
                .and_then(|t| TotpAlgorithm::from_name(&t.algorithm)),
            totp_digits: rec.totp.as_ref().map(|t| t.digits),
            totp_sha1_fallback: rec.totp.as_ref().is_some_and(|t| t.sha1_fallback),
            trusted_devices: u32::try_from(
                rec.trusted_devices
                    .iter()
                    .filter(|d| d.expires_at > now)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            recovery_pending_until: rec.recovery.as_ref().map(|r| r.effective_at),
            security_keys: u32::try_from(rec.security_keys.len()).unwrap_or(u32::MAX),
        })
    }
}
