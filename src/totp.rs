//! TOTP (RFC 6238): secrets, codes, otpauth URIs (Key Uri Format) and QR codes.
//!
//! Codes are computed with `totp-rs`; this module adds what a server needs around it: secrets
//! from the OS CSPRNG, a verification window with replay protection (the caller records the
//! accepted step), URIs that every authenticator app reads, and QR rendering.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;
use crate::policy::TotpAlgorithm;

/// A TOTP shared secret. `Debug` is redacted and the bytes are zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// `len` random bytes from the OS CSPRNG.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `len` is under 16 bytes (128 bits) or over 64.
    pub fn generate(len: usize) -> Result<Self, Error> {
        check_len(len)?;
        let mut bytes = vec![0u8; len];
        OsRng.fill_bytes(&mut bytes);
        Ok(TotpSecret(bytes))
    }

    /// A secret from raw bytes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when shorter than 16 bytes (128 bits) or longer than 64.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        let s = TotpSecret(bytes);
        check_len(s.0.len())?;
        Ok(s)
    }

    /// A secret from unpadded or padded RFC 4648 base32 (case-insensitive, spaces ignored).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when not base32; [`Error::InvalidConfig`] when too short.
    pub fn from_base32(text: &str) -> Result<Self, Error> {
        if text.len() > 256 {
            return Err(Error::InvalidInput("secret too long"));
        }
        let cleaned: String = text
            .chars()
            .filter(|c| *c != ' ' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &cleaned)
            .ok_or(Error::InvalidInput("secret is not base32"))?;
        Self::from_bytes(bytes)
    }

    /// The secret as unpadded base32, for manual entry in an authenticator app.
    ///
    /// **Security warning:** show it only to the user enrolling, once.
    pub fn to_base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn check_len(len: usize) -> Result<(), Error> {
    if !(16..=64).contains(&len) {
        return Err(Error::InvalidConfig(
            "a TOTP secret must be 16 to 64 bytes (at least 128 bits)".into(),
        ));
    }
    Ok(())
}

/// TOTP parameters: algorithm, digits and step length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    /// HMAC algorithm.
    pub algorithm: TotpAlgorithm,
    /// Digits per code (6 or 8).
    pub digits: u32,
    /// Step length in seconds.
    pub period: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

fn hotp(secret: &[u8], params: TotpParams, counter: u64) -> String {
    let alg = match params.algorithm {
        TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
        TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
        TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    // With step 1, totp-rs's "time" is the HOTP counter itself.
    let t = totp_rs::TOTP::new_unchecked(alg, params.digits as usize, 0, 1, secret.to_vec());
    t.generate(counter)
}

/// The code for Unix time `time` (RFC 6238), as a zero-padded string.
///
/// ```
/// use twofactor::{totp_code, TotpParams};
/// // RFC 6238 Appendix B, SHA-1, 8 digits, T = 59.
/// let params = TotpParams { digits: 8, ..TotpParams::default() };
/// assert_eq!(totp_code(b"12345678901234567890", params, 59), "94287082");
/// ```
pub fn totp_code(secret: &[u8], params: TotpParams, time: u64) -> String {
    let period = params.period.max(1);
    hotp(secret, params, time / period)
}

/// The step, within `skew` steps of `time`, whose code equals `code`; every candidate is computed
/// and compared in constant time.
pub(crate) fn matching_step(
    secret: &[u8],
    params: TotpParams,
    time: u64,
    skew: u32,
    code: &str,
) -> Option<u64> {
    let period = params.period.max(1);
    let now_step = time / period;
    let mut found: Option<u64> = None;
    let low = now_step.saturating_sub(u64::from(skew));
    let high = now_step.saturating_add(u64::from(skew));
    for step in low..=high {
        let candidate = hotp(secret, params, step);
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Percent-encodes per RFC 3986 (unreserved characters kept; space as `%20`).
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/` URI of the Key Uri Format for a secret.
///
/// Issuer and account are percent-encoded (`%20` for a space); neither may contain `:`.
///
/// ```
/// use twofactor::{otpauth_uri, TotpParams, TotpSecret};
/// let secret = TotpSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
/// let uri = otpauth_uri("Acme Co", "alice@example.com", &secret, TotpParams::default()).unwrap();
/// assert_eq!(uri, "otpauth://totp/Acme%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30");
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] when the issuer or account is empty, over 256 bytes, or contains `:`.
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &TotpSecret,
    params: TotpParams,
) -> Result<String, Error> {
    for (what, v) in [("issuer", issuer), ("account", account)] {
        if v.is_empty() || v.len() > 256 || v.contains(':') || v.chars().any(char::is_control) {
            return Err(Error::InvalidInput(if what == "issuer" {
                "issuer must be 1-256 characters without ':'"
            } else {
                "account name must be 1-256 characters without ':'"
            }));
        }
    }
    Ok(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        pct(issuer),
        pct(account),
        secret.to_base32(),
        pct(issuer),
        params.algorithm.name(),
        params.digits,
        params.period
    ))
}

/// The QR code of `data` as a standalone SVG document.
///
/// # Errors
/// [`Error::InvalidInput`] when the data is too long for a QR code.
pub fn qr_svg(data: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .map_err(|_| Error::InvalidInput("too long for a QR code"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The QR code of `data` as PNG bytes.
///
/// # Errors
/// [`Error::InvalidInput`] when the data is too long for a QR code.
pub fn qr_png(data: &str) -> Result<Vec<u8>, Error> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .map_err(|_| Error::InvalidInput("too long for a QR code"))?;
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|_| Error::InvalidInput("QR image could not be encoded"))?;
    Ok(out.into_inner())
}
