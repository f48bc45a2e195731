//! `otpauth://totp/` URIs of the Key Uri Format: [`otpauth_uri`] builds one, [`OtpAuthUri::parse`]
//! reads one back.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::Error;
use crate::totp::TotpAlgorithm;

use super::{TotpParams, TotpSecret};

/// The longest issuer or account name, in bytes.
const MAX_LABEL_PART: usize = 256;
/// The longest otpauth URI [`OtpAuthUri::parse`] reads, in bytes.
const MAX_URI_LEN: usize = 4096;

/// What is percent-encoded in an issuer or account: everything but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`), so a space is `%20`, never `+`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes per RFC 3986 (unreserved characters kept; space as `%20`; upper-case hex).
fn pct(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// The `otpauth://totp/` URI of the Key Uri Format for a secret.
///
/// Issuer and account are percent-encoded (`%20` for a space); neither may contain `:`. The
/// secret is unpadded base32; the issuer is both the label prefix and the `issuer` parameter.
/// [`OtpAuthUri::parse`] reads the result back.
///
/// ```
/// use twofactor::{totp::otpauth_uri, totp::TotpParams, totp::TotpSecret};
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
        if !usable_label(v) {
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
/// Whether `v` can stand as the issuer or account of an otpauth URI: 1 to 256 bytes, no `:`,
/// no control character, no whitespace at either end. The service builder checks its issuer
/// with this, so a setup never fails on it.
pub(crate) fn usable_label(v: &str) -> bool {
    let bad_edges = v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace);
    !v.contains(':') && !bad_edges && check_label_part(v).is_ok()
}

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
/// use twofactor::{totp::OtpAuthUri, totp::TotpAlgorithm};
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
///
/// The crate passes a `%` that is not followed by two hex digits through as it is; a URI with
/// one is malformed, so that is checked here first and refused.
fn pct_decode(s: &str) -> Result<String, Error> {
    if !escapes_are_well_formed(s) {
        return Err(Error::InvalidInput("bad percent-encoding"));
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| Error::InvalidInput("the URI is not UTF-8"))
}

/// Whether every `%` in `s` starts a `%XX` escape with two hex digits.
fn escapes_are_well_formed(s: &str) -> bool {
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
            if !(hex(bytes.next()) && hex(bytes.next())) {
                return false;
            }
        }
    }
    true
}
