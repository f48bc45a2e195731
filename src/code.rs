//! One-time codes: uniform generation from the OS CSPRNG, parsing of what a user types, and the
//! secret newtype that carries a code without ever printing it.

use std::fmt;

/// The cap on code, challenge and ceremony lifetimes (ASVS 2.7.2, NIST SP 800-63B §5.1.3.2).
pub(crate) const MAX_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

use rand::rngs::OsRng;
use rand::Rng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;

/// The longest input accepted from a user for any code, before normalisation.
pub(crate) const MAX_INPUT_LEN: usize = 64;

/// A secret string: a code, a backup code or a token. `Debug` prints `[redacted]`, there is no
/// `Display`, comparison is constant-time, and the bytes are zeroized on drop.
///
/// ```
/// use twofactor::Secret;
///
/// let s = Secret::new("123456".to_string());
/// assert_eq!(format!("{s:?}"), "Secret([redacted])");
/// assert_eq!(s.expose(), "123456");
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string.
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The secret text.
    ///
    /// **Security warning:** whatever you do with the result, do not log it, and show it to the
    /// user only where they are meant to see it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

/// A numeric code of `digits` digits, uniform over `0..10^digits`, leading zeros kept.
///
/// `gen_range` draws by rejection sampling, so there is no modulo bias.
pub(crate) fn generate_numeric(digits: u32) -> Secret {
    let digits = digits.clamp(1, 18);
    let bound = 10u64.pow(digits);
    let n: u64 = OsRng.gen_range(0..bound);
    Secret(format!("{n:0width$}", width = digits as usize))
}

/// Normalises user input: drops ASCII spaces, tabs and dashes, upper-cases ASCII letters.
///
/// # Errors
/// [`Error::MalformedCode`] for empty or over-long input or any non-ASCII character (Unicode
/// digits such as `١٢٣` are not digits here).
pub(crate) fn normalize(input: &str) -> Result<Secret, Error> {
    if input.len() > MAX_INPUT_LEN || !input.is_ascii() {
        return Err(Error::MalformedCode);
    }
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::MalformedCode);
    }
    Ok(Secret(s))
}

/// Whether normalised input is a numeric code of exactly `digits` digits.
pub(crate) fn is_numeric(code: &Secret, digits: u32) -> bool {
    code.0.len() == digits as usize && code.0.bytes().all(|b| b.is_ascii_digit())
}

/// Constant-time equality of two byte strings of public length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Formats a numeric code for reading: `123456` → `123 456`, `12345678` → `1234 5678`.
pub fn spaced(code: &str) -> String {
    let n = code.len();
    if n < 6 || !code.is_ascii() {
        return code.to_owned();
    }
    let (a, b) = code.split_at(n / 2);
    format!("{a} {b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_codes_keep_leading_zeros() {
        for _ in 0..2000 {
            let c = generate_numeric(6);
            assert_eq!(c.expose().len(), 6);
            assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn normalize_rejects_bad_input() {
        assert!(normalize("").is_err());
        assert!(normalize(" - ").is_err());
        assert!(normalize("١٢٣٤٥٦").is_err());
        assert!(normalize(&"1".repeat(65)).is_err());
        assert!(normalize("12a$56").is_err());
        assert_eq!(normalize(" 123-456 ").unwrap().expose(), "123456");
        assert_eq!(normalize("abcd-efgh").unwrap().expose(), "ABCDEFGH");
    }

    #[test]
    fn spaced_splits_in_half() {
        assert_eq!(spaced("123456"), "123 456");
        assert_eq!(spaced("12345678"), "1234 5678");
        assert_eq!(spaced("12"), "12");
    }
}
