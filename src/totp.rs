//! TOTP (RFC 6238): secrets, codes, otpauth URIs (Key Uri Format) and QR codes.
//!
//! Codes are computed here from a pre-keyed HMAC state (RFC 4226 §5.3 dynamic truncation): the
//! key schedule of the HMAC runs once per verification and each step of the window only clones
//! that state. This module adds what a server needs around it: secrets from the OS CSPRNG, a
//! verification window with replay protection (the caller records the accepted step), URIs that
//! every authenticator app reads (and a parser for them), and QR rendering. The RFC 4226 and
//! RFC 6238 test vectors in `tests/it/rfc_vectors.rs` pin the output.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;
use crate::policy::TotpAlgorithm;

/// The widest verification window, in steps either side of now (RFC 6238 §5.2).
const MAX_SKEW: u32 = 1;
/// The longest issuer or account name, in bytes.
const MAX_LABEL_PART: usize = 256;
/// The longest otpauth URI [`OtpAuthUri::parse`] reads, in bytes.
const MAX_URI_LEN: usize = 4096;

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
    /// Digits per code (6 or 8; 6 to 8 are accepted).
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

impl TotpParams {
    /// Checks the parameters: 6 to 8 digits (RFC 4226 §5.3), a period of 1 s to 1 h.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field that is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if !(6..=8).contains(&self.digits) {
            return Err(Error::InvalidConfig("TOTP digits must be 6 to 8".into()));
        }
        if !(1..=3600).contains(&self.period) {
            return Err(Error::InvalidConfig(
                "TOTP period must be 1 s to 3600 s".into(),
            ));
        }
        Ok(())
    }

    /// Digits clamped to what a 31-bit truncated value can carry, so no input panics.
    fn digits_clamped(&self) -> u32 {
        self.digits.clamp(1, 10)
    }

    fn step(&self, time: u64) -> u64 {
        time / self.period.max(1)
    }
}

/// An HMAC state with the key already absorbed; cloned once per HOTP counter.
#[derive(Clone)]
enum KeyedHmac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedHmac {
    /// `None` never happens in practice: HMAC accepts keys of any length.
    fn new(algorithm: TotpAlgorithm, key: &[u8]) -> Option<Self> {
        Some(match algorithm {
            TotpAlgorithm::Sha1 => KeyedHmac::Sha1(Mac::new_from_slice(key).ok()?),
            TotpAlgorithm::Sha256 => KeyedHmac::Sha256(Mac::new_from_slice(key).ok()?),
            TotpAlgorithm::Sha512 => KeyedHmac::Sha512(Mac::new_from_slice(key).ok()?),
        })
    }

    /// RFC 4226 §5.3: HMAC of the big-endian counter, dynamically truncated to 31 bits.
    fn truncated(&self, counter: u64) -> u32 {
        let msg = counter.to_be_bytes();
        match self {
            KeyedHmac::Sha1(m) => truncate(&finish(m.clone(), &msg)),
            KeyedHmac::Sha256(m) => truncate(&finish(m.clone(), &msg)),
            KeyedHmac::Sha512(m) => truncate(&finish(m.clone(), &msg)),
        }
    }
}

fn finish<M: Mac>(mut mac: M, msg: &[u8]) -> hmac::digest::Output<M> {
    mac.update(msg);
    mac.finalize().into_bytes()
}

fn truncate(hash: &[u8]) -> u32 {
    let offset = hash.last().map_or(0, |b| usize::from(b & 0x0f));
    // The offset is at most 15 and every hash here is at least 20 bytes long.
    let word: [u8; 4] = hash
        .get(offset..offset + 4)
        .and_then(|w| w.try_into().ok())
        .unwrap_or([0; 4]);
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// Verifies TOTP codes for one secret: the HMAC key is set up once, then each step of the window
/// costs one HMAC from that state.
///
/// Build one per verification from the freshly opened secret and drop it after. `Debug` is
/// redacted. The keyed HMAC state it holds is derived from the secret; the `hmac` crate gives no
/// way to zeroize it, so keep verifiers short-lived (the secret itself, in [`TotpSecret`], is
/// zeroized on drop).
///
/// **Security warning:** [`TotpVerifier::verify`] says which step matched; accept a step at most
/// once per user (record it atomically, refuse a step not greater than the last one), or a code
/// can be replayed within its window. The service does this for you.
///
/// ```
/// use twofactor::{totp_code, TotpParams, TotpSecret, TotpVerifier};
/// let secret = TotpSecret::generate(20).unwrap();
/// let params = TotpParams::default();
/// let verifier = TotpVerifier::new(&secret, params).unwrap();
/// let code = totp_code(secret.as_bytes(), params, 1_000_000);
/// assert_eq!(verifier.verify(1_000_000 + 30, 1, &code), Some(1_000_000 / 30));
/// assert_eq!(verifier.verify(1_000_000 + 60, 1, &code), None);
/// ```
#[derive(Clone)]
pub struct TotpVerifier {
    key: KeyedHmac,
    params: TotpParams,
    /// `10^digits` (or `u32::MAX` for 10 digits, above any 31-bit value).
    modulus: u32,
}

impl fmt::Debug for TotpVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpVerifier")
            .field("params", &self.params)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl TotpVerifier {
    /// A verifier for `secret` with `params`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the parameters fail [`TotpParams::validate`].
    pub fn new(secret: &TotpSecret, params: TotpParams) -> Result<Self, Error> {
        params.validate()?;
        Self::from_key(secret.as_bytes(), params).ok_or(Error::Crypto)
    }

    /// A verifier without parameter checks (digits are clamped to 1..=10, a period of 0 acts as 1).
    pub(crate) fn from_key(secret: &[u8], params: TotpParams) -> Option<Self> {
        Some(TotpVerifier {
            key: KeyedHmac::new(params.algorithm, secret)?,
            params,
            modulus: 10u32
                .checked_pow(params.digits_clamped())
                .unwrap_or(u32::MAX),
        })
    }

    fn value_at_step(&self, step: u64) -> u32 {
        self.key.truncated(step) % self.modulus
    }

    /// The code for Unix time `time`, zero-padded to the number of digits.
    pub fn code(&self, time: u64) -> String {
        let step = self.params.step(time);
        format!(
            "{:0width$}",
            self.value_at_step(step),
            width = self.params.digits_clamped() as usize
        )
    }

    /// The step, within `skew` steps of `time`, whose code equals `code`, or `None`.
    ///
    /// `code` must be exactly the configured number of ASCII digits (normalise user input first).
    /// Every step of the window is computed and compared in constant time, whichever matches.
    /// `skew` is capped at 1 (RFC 6238 §5.2): steps further away are never accepted. Steps
    /// saturate at 0 and `u64::MAX / period`, so no time panics.
    ///
    /// When two steps of the window share a code (one chance in a million for 6 digits), the
    /// current step wins, then the previous, then the next: so with replay protection a code
    /// that also belonged to the step used at the last login is still taken for the current one.
    pub fn verify(&self, time: u64, skew: u32, code: &str) -> Option<u64> {
        let digits = self.params.digits_clamped();
        let wanted = parse_digits(code, digits)?;
        let now = self.params.step(time);
        let skew = u64::from(skew.min(MAX_SKEW));
        let mut found: Option<u64> = None;
        // Current step first, then the earlier, then the later ones.
        let earlier = (1..=skew).map(|d| now.saturating_sub(d));
        let later = (1..=skew).map(|d| now.saturating_add(d));
        for step in std::iter::once(now).chain(earlier).chain(later) {
            let hit = bool::from(self.value_at_step(step).ct_eq(&wanted));
            if hit && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// The value of a code of exactly `digits` ASCII digits.
fn parse_digits(code: &str, digits: u32) -> Option<u32> {
    if code.len() != digits as usize {
        return None;
    }
    code.bytes().try_fold(0u32, |acc, b| {
        b.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u32::from(b - b'0')))
            .flatten()
    })
}

/// The code for Unix time `time` (RFC 6238), as a zero-padded string.
///
/// Digits outside 1..=10 are clamped into that range and a period of 0 acts as 1, so no input
/// panics; use [`TotpParams::validate`] to refuse such parameters.
///
/// ```
/// use twofactor::{totp_code, TotpParams};
/// // RFC 6238 Appendix B, SHA-1, 8 digits, T = 59.
/// let params = TotpParams { digits: 8, ..TotpParams::default() };
/// assert_eq!(totp_code(b"12345678901234567890", params, 59), "94287082");
/// ```
pub fn totp_code(secret: &[u8], params: TotpParams, time: u64) -> String {
    TotpVerifier::from_key(secret, params)
        .map(|v| v.code(time))
        .unwrap_or_default()
}

/// The step, within `skew` steps of `time`, whose code equals `code`; every candidate is computed
/// and compared in constant time. See [`TotpVerifier::verify`].
pub(crate) fn matching_step(
    secret: &[u8],
    params: TotpParams,
    time: u64,
    skew: u32,
    code: &str,
) -> Option<u64> {
    TotpVerifier::from_key(secret, params)?.verify(time, skew, code)
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
/// Issuer and account are percent-encoded (`%20` for a space); neither may contain `:`. The
/// secret is unpadded base32; the issuer is both the label prefix and the `issuer` parameter.
/// [`OtpAuthUri::parse`] reads the result back.
///
/// ```
/// use twofactor::{otpauth_uri, TotpParams, TotpSecret};
/// let secret = TotpSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
/// let uri = otpauth_uri("Acme Co", "alice@example.com", &secret, TotpParams::default()).unwrap();
/// assert_eq!(uri, "otpauth://totp/Acme%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30");
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] when the issuer or account is empty, over 256 bytes, contains `:` or a
/// control character, or starts or ends with whitespace; [`Error::InvalidConfig`] when the
/// parameters fail [`TotpParams::validate`].
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &TotpSecret,
    params: TotpParams,
) -> Result<String, Error> {
    for (is_issuer, v) in [(true, issuer), (false, account)] {
        let bad_edges = v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace);
        if v.contains(':') || bad_edges || check_label_part(v).is_err() {
            return Err(Error::InvalidInput(if is_issuer {
                "issuer must be 1-256 bytes without ':', control characters or outer spaces"
            } else {
                "account name must be 1-256 bytes without ':', control characters or outer spaces"
            }));
        }
    }
    params.validate()?;
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

/// Non-empty, at most 256 bytes, no control character.
fn check_label_part(v: &str) -> Result<(), ()> {
    if v.is_empty() || v.len() > MAX_LABEL_PART || v.chars().any(char::is_control) {
        return Err(());
    }
    Ok(())
}

/// A parsed `otpauth://totp/` URI of the Key Uri Format, for importing a secret or checking a URI.
///
/// `Debug` prints the labels and parameters, never the secret.
///
/// ```
/// use twofactor::{OtpAuthUri, TotpAlgorithm};
/// let uri = OtpAuthUri::parse(
///     "otpauth://totp/Acme%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Acme%20Co",
/// ).unwrap();
/// assert_eq!(uri.issuer(), Some("Acme Co"));
/// assert_eq!(uri.account(), "alice@example.com");
/// assert_eq!(uri.params().algorithm, TotpAlgorithm::Sha1); // the defaults: SHA1, 6 digits, 30 s
/// assert_eq!(uri.secret().to_base32(), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
/// assert!(OtpAuthUri::parse("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct OtpAuthUri {
    issuer: Option<String>,
    account: String,
    secret: TotpSecret,
    params: TotpParams,
}

impl OtpAuthUri {
    /// Parses an `otpauth://totp/[ISSUER:]ACCOUNT?secret=...` URI.
    ///
    /// Scheme and type are case-insensitive; the label and the values are percent-decoded
    /// (`+` is a literal plus, as RFC 3986 has it); spaces around the issuer and account are
    /// dropped. `algorithm`, `digits` and `period` default to `SHA1`, 6 and 30; unknown
    /// parameters are ignored. Any input gives a value or an error, never a panic.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] with the reason: not an otpauth URI, a type other than `totp`, a
    /// bad percent-escape or UTF-8, an empty or over-long issuer or account, a `:` in either,
    /// an issuer parameter that differs from the label's, a missing, repeated or unreadable
    /// parameter, a secret that is not base32 of 128 to 512 bits, or an input over 4096 bytes.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        if uri.len() > MAX_URI_LEN {
            return Err(Error::InvalidInput("the URI is too long"));
        }
        let rest = strip_prefix_ignore_case(uri, "otpauth://")
            .ok_or(Error::InvalidInput("not an otpauth:// URI"))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or(Error::InvalidInput("the URI has no label"))?;
        if !kind.eq_ignore_ascii_case("totp") {
            return Err(Error::InvalidInput(
                "only otpauth://totp/ URIs are supported",
            ));
        }
        if rest.contains('#') {
            return Err(Error::InvalidInput("the URI has a fragment"));
        }
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let label = pct_decode(label)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer), account),
            None => (None, label.as_str()),
        };
        if account.contains(':') {
            return Err(Error::InvalidInput(
                "the label has more than one ':' (issuer and account may not contain one)",
            ));
        }
        let account = clean_part(account, false)?;
        let label_issuer = label_issuer.map(|i| clean_part(i, true)).transpose()?;

        let mut secret: Option<TotpSecret> = None;
        let mut issuer: Option<String> = None;
        let mut algorithm: Option<TotpAlgorithm> = None;
        let mut digits: Option<u32> = None;
        let mut period: Option<u64> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.to_ascii_lowercase();
            let repeated = match key.as_str() {
                "secret" => {
                    let text = zeroize::Zeroizing::new(pct_decode(value)?);
                    let s = TotpSecret::from_base32(&text).map_err(|_| {
                        Error::InvalidInput("the secret is not base32 of 128 to 512 bits")
                    })?;
                    secret.replace(s).is_some()
                }
                "issuer" => {
                    let v = pct_decode(value)?;
                    if v.contains(':') {
                        return Err(Error::InvalidInput("the issuer may not contain ':'"));
                    }
                    issuer.replace(clean_part(&v, true)?).is_some()
                }
                "algorithm" => {
                    let a = TotpAlgorithm::from_name(&pct_decode(value)?)
                        .ok_or(Error::InvalidInput("unknown algorithm"))?;
                    algorithm.replace(a).is_some()
                }
                "digits" => {
                    let d = pct_decode(value)?
                        .parse()
                        .map_err(|_| Error::InvalidInput("digits is not a number"))?;
                    digits.replace(d).is_some()
                }
                "period" => {
                    let p = pct_decode(value)?
                        .parse()
                        .map_err(|_| Error::InvalidInput("period is not a number"))?;
                    period.replace(p).is_some()
                }
                _ => false,
            };
            if repeated {
                return Err(Error::InvalidInput("a parameter is repeated"));
            }
        }
        let secret = secret.ok_or(Error::InvalidInput("the URI has no secret"))?;
        let issuer = match (label_issuer, issuer) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::InvalidInput(
                    "the issuer parameter differs from the label's issuer",
                ))
            }
            (a, b) => b.or(a),
        };
        let defaults = TotpParams::default();
        let params = TotpParams {
            algorithm: algorithm.unwrap_or(defaults.algorithm),
            digits: digits.unwrap_or(defaults.digits),
            period: period.unwrap_or(defaults.period),
        };
        params.validate().map_err(|_| {
            Error::InvalidInput("digits must be 6 to 8 and the period 1 s to 3600 s")
        })?;
        Ok(OtpAuthUri {
            issuer,
            account,
            secret,
            params,
        })
    }

    /// The issuer, from the `issuer` parameter or else the label prefix, when either is present.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret.
    ///
    /// **Security warning:** it is the whole factor; do not log it or keep it unsealed.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Algorithm, digits and period.
    pub fn params(&self) -> TotpParams {
        self.params
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Trims whitespace and checks an issuer or account name.
fn clean_part(v: &str, is_issuer: bool) -> Result<String, Error> {
    // Control characters are refused before trimming: a trailing newline is not a space.
    let trimmed = v.trim();
    let v = if v.chars().any(char::is_control) {
        v
    } else {
        trimmed
    };
    check_label_part(v).map_err(|()| {
        Error::InvalidInput(if is_issuer {
            "the issuer is empty, over 256 bytes or has a control character"
        } else {
            "the account name is empty, over 256 bytes or has a control character"
        })
    })?;
    Ok(v.to_owned())
}

/// Percent-decodes RFC 3986 text into UTF-8.
fn pct_decode(s: &str) -> Result<String, Error> {
    let bad = Error::InvalidInput("bad percent-encoding");
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(bad),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| Error::InvalidInput("the URI is not UTF-8"))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `matching_step` (what the service calls) over random secrets: T-1, T and T+1 match with
    /// skew 1, only T with skew 0, and T±2 never as itself.
    #[test]
    fn matching_step_window() {
        let p = TotpParams::default();
        for i in 0..500u64 {
            let secret = TotpSecret::generate(20).unwrap();
            let s = secret.as_bytes();
            let time = 1_700_000_000 + i * 7919;
            let step = time / 30;
            let code = |st: u64| totp_code(s, p, st * 30);
            for st in [step - 1, step, step + 1] {
                let hit = matching_step(s, p, time, 1, &code(st)).unwrap();
                // The first of current, previous, next with that code.
                let first = [step, step - 1, step + 1]
                    .into_iter()
                    .find(|t| code(*t) == code(st))
                    .unwrap();
                assert_eq!(hit, first, "for step {st}");
            }
            assert_eq!(matching_step(s, p, time, 0, &code(step)), Some(step));
            for far in [step - 2, step + 2] {
                for skew in [0, 1, 2, u32::MAX] {
                    if let Some(hit) = matching_step(s, p, time, skew, &code(far)) {
                        assert!(hit.abs_diff(step) <= 1 && code(hit) == code(far));
                    }
                }
            }
            for near in [step - 1, step + 1] {
                if code(near) != code(step) {
                    assert_eq!(matching_step(s, p, time, 0, &code(near)), None);
                }
            }
        }
    }

    #[test]
    fn matching_step_saturates_at_the_ends_of_time() {
        let s = b"12345678901234567890";
        let p = TotpParams::default();
        let last = u64::MAX / 30;
        let code = totp_code(s, p, u64::MAX);
        assert_eq!(matching_step(s, p, u64::MAX, 1, &code), Some(last));
        let first = totp_code(s, p, 0);
        assert_eq!(matching_step(s, p, 0, 1, &first), Some(0));
    }
}
