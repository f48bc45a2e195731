//! HOTP/TOTP math (RFC 4226, RFC 6238): [`TotpSecret`], [`TotpParams`], codes from a pre-keyed
//! HMAC state, [`TotpVerifier`] and the constant-time window match the service uses.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;

/// The widest verification window, in steps either side of now (RFC 6238 §5.2).
const MAX_SKEW: u32 = 1;
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
    /// `=` is accepted only as padding: at the end, and exactly as much as RFC 4648 puts there
    /// (`======`, `====`, `===` or `=` after a last group of 2, 4, 5 or 7 characters). A length
    /// that no encoding has (1, 3 or 6 characters in the last group) is refused: it would drop
    /// characters silently.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when not base32; [`Error::InvalidConfig`] when too short.
    pub fn from_base32(text: &str) -> Result<Self, Error> {
        if text.len() > 256 {
            return Err(Error::InvalidInput("secret too long"));
        }
        let not_base32 = Error::InvalidInput("secret is not base32");
        let cleaned: String = text
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let data = cleaned.trim_end_matches('=');
        let padding = cleaned.len() - data.len();
        let full_padding = match data.len() % 8 {
            0 => 0,
            2 => 6,
            4 => 4,
            5 => 3,
            7 => 1,
            _ => return Err(not_base32),
        };
        if data.contains('=') || (padding != 0 && padding != full_padding) {
            return Err(not_base32);
        }
        let bytes =
            base32::decode(base32::Alphabet::Rfc4648 { padding: false }, data).ok_or(not_base32)?;
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

/// The HMAC algorithm of TOTP codes. Serializes as its [`name`](Self::name) (`"SHA1"`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA1: what every authenticator app honours (the default).
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in otpauth URIs and stored records: `SHA1`, `SHA256`, `SHA512`.
    pub fn name(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }

    /// The algorithm named `name` (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(TotpAlgorithm::Sha1),
            "SHA256" => Some(TotpAlgorithm::Sha256),
            "SHA512" => Some(TotpAlgorithm::Sha512),
            _ => None,
        }
    }
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
/// use twofactor::{totp::totp_code, totp::TotpParams, totp::TotpSecret, totp::TotpVerifier};
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
/// use twofactor::{totp::totp_code, totp::TotpParams};
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

    /// Found by the `totp_base32` fuzz target: `=` was dropped wherever it stood, and a last
    /// group of 1, 3 or 6 characters was cut off, so `"iiiiiNNNZNZJdddddiiiNNNdddd"` (27
    /// characters) read as the secret of its first 26.
    #[test]
    fn from_base32_accepts_only_trailing_rfc4648_padding() {
        let b32 = |s: &str| TotpSecret::from_base32(s).map(|s| s.as_bytes().to_vec());
        let twenty = b32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        // 16 bytes: 26 characters, and 6 of padding when padded.
        let sixteen = b32("AAAQEAYEAUDAOCAJBIFQYDIOB4").unwrap();
        assert_eq!(sixteen, (0..16).collect::<Vec<u8>>());
        assert_eq!(b32("AAAQEAYEAUDAOCAJBIFQYDIOB4======").unwrap(), sixteen);
        assert_eq!(
            b32("aaaq eaye audaocaj bifq ydio b4== ====").unwrap(),
            sixteen
        );
        for bad in [
            "AAAQEAYEAUDAOCAJBIFQYDIOB4=",
            "AAAQEAYEAUDAOCAJBIFQYDIOB4=====",
            "AAAQEAYEAUDAOCAJBIFQYDIOB4=======",
            "AAAQEAYEAUDAOCAJBIFQYDIO=B4======",
            "=AAAQEAYEAUDAOCAJBIFQYDIOB4",
            "AAAQEAYEAUDAOCAJBIFQ=YDIOB4",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP=",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP========",
            "JBSWY3DP=EHPK3PXPJBSWY3DPEHPK3PXP",
            "iiiiiNNNZNZJdddddiiiNNNdddd",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPA",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPAAA",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPAAAAAA",
        ] {
            assert!(
                matches!(b32(bad), Err(Error::InvalidInput(_))),
                "{bad} was accepted"
            );
        }
        assert_eq!(b32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap(), twenty);
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
