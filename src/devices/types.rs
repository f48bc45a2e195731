//! The values of trusted devices: the token a browser keeps, and what a host lists.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::clock::Timestamp;
use crate::code;
use crate::error::Error;
use crate::store::TrustedDeviceRecord;

const PREFIX: &str = "tfd1_";
pub(crate) const RANDOM_BYTES: usize = 32;
const BODY_CHARS: usize = 43;
pub(crate) const ID_BYTES: usize = 12;
/// The longest label accepted, in bytes.
pub const MAX_DEVICE_LABEL: usize = 128;

/// An opaque trusted-device token, for a `Secure; HttpOnly; SameSite=Lax` cookie.
///
/// `Debug` is redacted, the token is zeroized on drop and compared in constant time. Parse what
/// a client sends back with [`DeviceToken::parse`] or [`str::parse`]: malformed input is an
/// error, never a panic. A challenge token is not a device token, nor the reverse:
///
/// ```
/// use twofactor::{ChallengeToken, account::DeviceToken};
/// assert!(DeviceToken::parse("not a token").is_err());
/// let challenge = format!("tfc2_{}", "A".repeat(59));
/// assert!(DeviceToken::parse(&challenge).is_err());
/// let device = format!("tfd1_{}", "A".repeat(43));
/// assert!(DeviceToken::parse(&device).is_ok());
/// assert!(ChallengeToken::parse(&device).is_err());
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceToken(String);

impl PartialEq for DeviceToken {
    fn eq(&self, other: &Self) -> bool {
        code::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for DeviceToken {}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken([redacted])")
    }
}

impl std::str::FromStr for DeviceToken {
    type Err = Error;

    /// [`DeviceToken::parse`].
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

impl DeviceToken {
    pub(crate) fn generate() -> (Self, [u8; RANDOM_BYTES]) {
        let mut random = [0u8; RANDOM_BYTES];
        OsRng.fill_bytes(&mut random);
        let mut text = String::with_capacity(PREFIX.len() + BODY_CHARS);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(random, &mut text);
        (DeviceToken(text), random)
    }

    /// Parses a token a client sent back: `tfd1_` and 43 canonical base64url characters.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else; the error never repeats the input.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::random_of(text)
            .map(|_| DeviceToken(text.to_owned()))
            .ok_or(Error::InvalidInput("not a device token"))
    }

    pub(crate) fn random_of(text: &str) -> Option<[u8; RANDOM_BYTES]> {
        let body = text.strip_prefix(PREFIX)?;
        if body.len() != BODY_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        let random: [u8; RANDOM_BYTES] = bytes.as_slice().try_into().ok()?;
        // Only the canonical encoding: one token has one text.
        (URL_SAFE_NO_PAD.encode(random) == body).then_some(random)
    }

    /// The token's text, for the cookie.
    ///
    /// **Security warning:** it signs the user in without a code: put it only in a `Secure;
    /// HttpOnly; SameSite=Lax` cookie for that user's browser, never in a log or a URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A trusted device as listed to its user: no token, nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TrustedDevice {
    /// The device's public id, for [`Devices::revoke`](crate::service::Devices::revoke).
    pub id: String,
    /// The host's label ("Firefox on Linux").
    pub label: String,
    /// When it was trusted.
    pub created_at: Timestamp,
    /// When it last signed in without a code (`None`: not yet). Recorded coarsely: a sign-in
    /// rewrites it only when the stored time is an hour old or more, so that many sign-ins at
    /// once on one device do not contend for the enrolment record. It may therefore be up to an
    /// hour behind the latest sign-in.
    pub last_used_at: Option<Timestamp>,
    /// When its trust ends.
    pub expires_at: Timestamp,
}

impl From<&TrustedDeviceRecord> for TrustedDevice {
    fn from(r: &TrustedDeviceRecord) -> Self {
        TrustedDevice {
            id: r.id.clone(),
            label: r.label.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
        }
    }
}

/// What [`Devices::trust`](crate::service::Devices::trust) gives: the token for the cookie and the device as
/// listed. `Debug` shows no token.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeviceTrust {
    /// The token, for a `Secure; HttpOnly; SameSite=Lax` cookie that lives until
    /// `device.expires_at`.
    pub token: DeviceToken,
    /// The device as [`Devices::list`](crate::service::Devices::list) lists it.
    pub device: TrustedDevice,
}
