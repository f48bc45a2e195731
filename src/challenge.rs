//! The login challenge: an opaque, typed token and the record it points to.
//!
//! A [`ChallengeToken`] is shown as `tfc2_` followed by 59 base64url characters: the user's
//! 12-byte key tag (a keyed hash of the user id, which names where the user's records live) and
//! 256 bits from the OS CSPRNG. The store never sees the token: the challenge lives under a keyed
//! hash of it, beside the user's other records, so a leaked store gives no usable token and one
//! store call can reach the challenge and the user's limits together. The record names the user,
//! the methods on offer, the email address and the sealed TOTP secret the answer is checked
//! against, and the unused backup-code count: no password, no code.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::clock::Timestamp;
use crate::codec::{Reader, Writer};
use crate::error::{Error, StoreError};
use crate::keys::Keyring;
use crate::method::Method;
use crate::totp::TotpAlgorithm;

const PREFIX: &str = "tfc2_";
/// The length of a user's key tag.
pub(crate) const TAG_BYTES: usize = 12;
const RANDOM_BYTES: usize = 32;
const BODY_CHARS: usize = 59;

/// An opaque login challenge token, handed to the client after the password step.
///
/// `Debug` is redacted and the token is zeroized on drop. Parse what a client sends back with
/// [`ChallengeToken::parse`] or [`str::parse`]: malformed input is an error, never a panic.
///
/// With serde it is its string form (`"tfc2_…"`), so a request or response struct can hold it
/// directly; deserializing applies the same strict parse (the exact prefix, 59 canonical
/// base64url characters, no padding or spaces) and its error never repeats the input.
///
/// ```
/// use twofactor::ChallengeToken;
/// assert!(ChallengeToken::parse("not a token").is_err());
/// assert!("".parse::<ChallengeToken>().is_err());
///
/// #[derive(serde::Deserialize)]
/// struct VerifyRequest {
///     challenge: ChallengeToken,
///     code: String,
/// }
/// let bad = serde_json::from_str::<VerifyRequest>(r#"{"challenge": "tfc2_x", "code": "1"}"#);
/// assert!(bad.is_err());
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChallengeToken(String);

/// Compared in constant time (for tokens of equal length; the length is public).
impl PartialEq for ChallengeToken {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), other.0.as_bytes()).into()
    }
}

impl Eq for ChallengeToken {}

impl fmt::Debug for ChallengeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeToken([redacted])")
    }
}

impl std::str::FromStr for ChallengeToken {
    type Err = Error;

    /// [`ChallengeToken::parse`].
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

/// The token's text. **Security warning:** as for [`ChallengeToken::as_str`], serialize it only
/// into the response to the client that passed the password step, never into a log.
impl serde::Serialize for ChallengeToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// The strict parse of [`ChallengeToken::parse`]; the error names no part of the input.
impl<'de> serde::Deserialize<'de> for ChallengeToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TokenVisitor;
        impl serde::de::Visitor<'_> for TokenVisitor {
            type Value = ChallengeToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a challenge token (tfc2_ and 59 base64url characters)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ChallengeToken, E> {
                ChallengeToken::parse(text).map_err(|_| E::custom("invalid challenge token"))
            }
        }
        deserializer.deserialize_str(TokenVisitor)
    }
}

impl ChallengeToken {
    /// A fresh token for the user whose key tag is `tag`.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn generate(tag: &[u8; TAG_BYTES]) -> Self {
        Self::make(tag, None).0
    }

    /// A fresh token for the user whose key tag is `tag`, with its challenge id: the same id
    /// [`locate`](Self::locate) finds, computed from the bytes at hand instead of decoding the
    /// token again.
    pub(crate) fn generate_located(tag: &[u8; TAG_BYTES], keys: &Keyring) -> (Self, [u8; 16]) {
        let (token, id) = Self::make(tag, Some(keys));
        (token, id.unwrap_or_default())
    }

    fn make(tag: &[u8; TAG_BYTES], keys: Option<&Keyring>) -> (Self, Option<[u8; 16]>) {
        let mut bytes = [0u8; TAG_BYTES + RANDOM_BYTES];
        let (head, random) = bytes.split_at_mut(TAG_BYTES);
        head.copy_from_slice(tag);
        OsRng.fill_bytes(random);
        let t = ChallengeToken(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)));
        let id = keys.map(|k| challenge_id(k, &bytes));
        bytes.zeroize();
        (t, id)
    }

    /// Parses a token sent back by a client.
    ///
    /// # Errors
    /// [`Error::InvalidChallenge`] when the text is not a well-formed token.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let body = text.strip_prefix(PREFIX).ok_or(Error::InvalidChallenge)?;
        if body.len() != BODY_CHARS {
            return Err(Error::InvalidChallenge);
        }
        let mut decoded = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Error::InvalidChallenge)?;
        let ok = decoded.len() == TAG_BYTES + RANDOM_BYTES;
        decoded.zeroize();
        if !ok {
            return Err(Error::InvalidChallenge);
        }
        Ok(ChallengeToken(text.to_owned()))
    }

    /// The token text, to send to the client.
    ///
    /// **Security warning:** it authorises the second step of a login: send it only to the client
    /// that passed the password step, and do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user's key tag and the challenge id: a keyed hash of the whole token, never the
    /// token itself. `None` only for a token that did not come from `parse` or `generate`.
    pub(crate) fn locate(&self, keys: &Keyring) -> Option<([u8; TAG_BYTES], [u8; 16])> {
        let body = self.0.strip_prefix(PREFIX)?;
        let mut decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = decoded.first_chunk::<TAG_BYTES>().copied();
        let id = challenge_id(keys, &decoded);
        decoded.zeroize();
        Some((tag?, id))
    }
}

/// The id a challenge is stored under: a keyed hash of the token's bytes.
fn challenge_id(keys: &Keyring, token_bytes: &[u8]) -> [u8; 16] {
    let mac = keys.mac(&[b"challenge", token_bytes]);
    mac.first_chunk::<16>().copied().unwrap_or_default()
}

/// The TOTP factor a challenge is answered against: the sealed secret and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChallengeTotp {
    pub(crate) sealed: Vec<u8>,
    pub(crate) algorithm: TotpAlgorithm,
    pub(crate) digits: u32,
    pub(crate) period: u64,
}

/// The stored state of a login challenge, in a fixed binary layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChallengeRecord {
    pub(crate) user: String,
    pub(crate) methods: Vec<Method>,
    pub(crate) email: Option<String>,
    /// The phone (E.164) the code goes to when the user has a text factor and no email one.
    pub(crate) phone: Option<String>,
    pub(crate) totp: Option<ChallengeTotp>,
    pub(crate) backup_codes_remaining: u32,
    pub(crate) expires_at: Timestamp,
    /// The user had a pending account recovery when the challenge began: a pass cancels it.
    pub(crate) recovery_pending: bool,
    /// The WebAuthn ceremony state a security key's assertion is checked against (when
    /// [`Method::SecurityKey`] is on offer): single use and expiring with the challenge.
    pub(crate) security_key: Option<Vec<u8>>,
}

/// The flag of [`ChallengeRecord::recovery_pending`] in the methods byte (no method uses it).
const RECOVERY_BIT: u8 = 0x80;

/// Every bit of the methods byte that a record keeps: the methods of a challenge and
/// [`RECOVERY_BIT`]; a decode drops the others.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) const KNOWN_BITS: u8 = 1 | 2 | 4 | 16 | 32 | RECOVERY_BIT;

const RECORD_VERSION: u8 = 2;

fn method_bit(m: Method) -> u8 {
    match m {
        Method::Totp => 1,
        Method::Email => 2,
        Method::BackupCode => 4,
        // Never a method of a challenge.
        Method::TrustedDevice => 8,
        Method::Sms => 16,
        Method::SecurityKey => 32,
    }
}

fn algorithm_byte(a: TotpAlgorithm) -> u8 {
    match a {
        TotpAlgorithm::Sha1 => 1,
        TotpAlgorithm::Sha256 => 2,
        TotpAlgorithm::Sha512 => 3,
    }
}

impl ChallengeRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let extra = self.user.len()
            + self.email.as_ref().map_or(0, String::len)
            + self.phone.as_ref().map_or(0, String::len)
            + self.totp.as_ref().map_or(0, |t| t.sealed.len())
            + self.security_key.as_ref().map_or(0, Vec::len);
        let mut w = Writer::with_capacity(32 + extra);
        let mut bits = self.methods.iter().fold(0, |b, m| b | method_bit(*m));
        if self.recovery_pending {
            bits |= RECOVERY_BIT;
        }
        w.u8(RECORD_VERSION)
            .u8(bits)
            .u32(self.backup_codes_remaining)
            .u64(self.expires_at.as_unix_secs())
            .bytes(self.user.as_bytes());
        // One channel at most: email (1) or a phone (2).
        match (&self.email, &self.phone) {
            (Some(e), _) => w.u8(1).bytes(e.as_bytes()),
            (None, Some(p)) => w.u8(2).bytes(p.as_bytes()),
            (None, None) => w.u8(0),
        };
        match &self.totp {
            Some(t) => w
                .u8(algorithm_byte(t.algorithm))
                .u8(u8::try_from(t.digits).unwrap_or(u8::MAX))
                .u64(t.period)
                .bytes(&t.sealed),
            None => w.u8(0),
        };
        // Written only when present: a record without it is the layout of earlier releases.
        if let Some(state) = &self.security_key {
            w.u8(1).bytes(state);
        }
        w.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Self::read(bytes).ok_or_else(|| Error::Store(StoreError::corrupt("malformed challenge")))
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != RECORD_VERSION {
            return None;
        }
        let bits = r.u8()?;
        let methods = [
            Method::Totp,
            Method::Email,
            Method::Sms,
            Method::SecurityKey,
            Method::BackupCode,
        ]
        .into_iter()
        .filter(|m| bits & method_bit(*m) != 0)
        .collect();
        let backup_codes_remaining = r.u32()?;
        let expires_at = Timestamp::from_unix_secs(r.u64()?);
        let user = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let (email, phone) = match r.u8()? {
            0 => (None, None),
            1 => (Some(String::from_utf8(r.bytes()?.to_vec()).ok()?), None),
            2 => (None, Some(String::from_utf8(r.bytes()?.to_vec()).ok()?)),
            _ => return None,
        };
        let totp = match r.u8()? {
            0 => None,
            a => Some(ChallengeTotp {
                algorithm: match a {
                    1 => TotpAlgorithm::Sha1,
                    2 => TotpAlgorithm::Sha256,
                    3 => TotpAlgorithm::Sha512,
                    _ => return None,
                },
                digits: u32::from(r.u8()?),
                period: r.u64()?,
                sealed: r.bytes()?.to_vec(),
            }),
        };
        let security_key = match r.is_empty() {
            true => None,
            false => match r.u8()? {
                1 => Some(r.bytes()?.to_vec()),
                _ => return None,
            },
        };
        r.is_empty().then_some(ChallengeRecord {
            recovery_pending: bits & RECOVERY_BIT != 0,
            security_key,
            user,
            methods,
            email,
            phone,
            totp,
            backup_codes_remaining,
            expires_at,
        })
    }
}

/// A code waiting to be entered: its keyed hash and its expiry, 40 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CodeRecord {
    pub(crate) mac: [u8; 32],
    pub(crate) expires_at: Timestamp,
}

impl CodeRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.expires_at.as_unix_secs().to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = || Error::Store(StoreError::corrupt("malformed code record"));
        let (mac, rest) = bytes.split_first_chunk::<32>().ok_or_else(corrupt)?;
        let expires: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
        Ok(CodeRecord {
            mac: *mac,
            expires_at: Timestamp::from_unix_secs(u64::from_be_bytes(expires)),
        })
    }
}

/// The second step of a login: hand [`Challenge::token`] to the client and ask for a code.
///
/// Serializes as `{"token": "tfc2_…", "methods": ["totp", …], "expires_at": <unix seconds>,
/// "email_sent": bool, "text_sent": bool}`, plus `"security_key": {"publicKey": …}` when a
/// security key is on offer: the token included, for the client that passed the password step.
#[derive(Debug, serde::Serialize)]
pub struct Challenge {
    pub(crate) token: ChallengeToken,
    pub(crate) methods: Vec<Method>,
    pub(crate) expires_at: Timestamp,
    pub(crate) email_sent: bool,
    pub(crate) text_sent: bool,
    pub(crate) recovery_pending: bool,
    /// The request options for `navigator.credentials.get`, when a security key is on offer.
    #[cfg(feature = "webauthn")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) security_key: Option<crate::security_key::types::SecurityKeyOptions>,
}

impl Challenge {
    /// The token the client sends back with its code.
    pub fn token(&self) -> &ChallengeToken {
        &self.token
    }

    /// The methods the user may answer with.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// When the challenge expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Whether an email code was sent for this challenge (false when email is not a method, or
    /// the send cap was reached: the user may then resend later or use another method).
    pub fn email_sent(&self) -> bool {
        self.email_sent
    }

    /// Whether a code was sent by text (SMS) for this challenge (the user's phone factor is
    /// used when they have no email factor).
    pub fn text_sent(&self) -> bool {
        self.text_sent
    }

    /// Whether an account recovery is pending for the user: somebody with the password asked to
    /// turn two-factor authentication off. Passing this challenge cancels it
    /// ([`Verified::recovery_cancelled`](crate::Verified::recovery_cancelled)); a host shows the
    /// user why a trusted device was not enough this time.
    pub fn recovery_pending(&self) -> bool {
        self.recovery_pending
    }

    /// The options for `navigator.credentials.get` when [`Method::SecurityKey`] is on offer
    /// (feature `webauthn`): the browser signs their challenge, and the result goes to
    /// [`verify_login`](crate::TwoFactorService::verify_login).
    #[cfg(feature = "webauthn")]
    pub fn security_key(&self) -> Option<&crate::security_key::types::SecurityKeyOptions> {
        self.security_key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bits_are_the_challenge_methods_and_the_recovery_flag() {
        let methods = [
            Method::Totp,
            Method::Email,
            Method::Sms,
            Method::BackupCode,
            Method::SecurityKey,
        ];
        let bits = methods.iter().fold(RECOVERY_BIT, |b, m| b | method_bit(*m));
        assert_eq!(KNOWN_BITS, bits);
        assert_eq!(KNOWN_BITS & method_bit(Method::TrustedDevice), 0);
        for m in methods {
            let mut r = record();
            r.methods = vec![m];
            r.recovery_pending = true;
            let bytes = r.encode();
            assert_eq!(bytes.get(1).map(|b| b & !KNOWN_BITS), Some(0));
            let back = ChallengeRecord::decode(&bytes).expect("decodes");
            assert_eq!(back.methods, vec![m]);
            assert!(back.recovery_pending);
        }
    }

    fn record() -> ChallengeRecord {
        ChallengeRecord {
            user: "alice".into(),
            methods: vec![Method::Totp, Method::Email, Method::BackupCode],
            email: Some("alice@example.com".into()),
            phone: None,
            totp: Some(ChallengeTotp {
                sealed: vec![1, 2, 3],
                algorithm: TotpAlgorithm::Sha256,
                digits: 8,
                period: 30,
            }),
            backup_codes_remaining: 7,
            expires_at: Timestamp::from_unix_secs(1_700_000_300),
            recovery_pending: false,
            security_key: None,
        }
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let r = record();
        let bytes = r.encode();
        assert_eq!(ChallengeRecord::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(
                ChallengeRecord::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ChallengeRecord::decode(&longer).is_err());
        let bare = ChallengeRecord {
            email: None,
            totp: None,
            methods: vec![Method::BackupCode],
            ..r
        };
        assert_eq!(ChallengeRecord::decode(&bare.encode()).unwrap(), bare);
        let flagged = ChallengeRecord {
            recovery_pending: true,
            ..bare.clone()
        };
        assert_eq!(ChallengeRecord::decode(&flagged.encode()).unwrap(), flagged);
        assert_ne!(flagged.encode(), bare.encode());
        let texted = ChallengeRecord {
            phone: Some("+491701234567".into()),
            methods: vec![Method::Sms, Method::BackupCode],
            ..bare.clone()
        };
        assert_eq!(ChallengeRecord::decode(&texted.encode()).unwrap(), texted);
        let keyed = ChallengeRecord {
            methods: vec![Method::SecurityKey, Method::BackupCode],
            security_key: Some(br#"{"ast":{}}"#.to_vec()),
            ..bare.clone()
        };
        let bytes = keyed.encode();
        assert_eq!(ChallengeRecord::decode(&bytes).unwrap(), keyed);
        for cut in bare.encode().len() + 1..bytes.len() {
            assert!(
                ChallengeRecord::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let code = CodeRecord {
            mac: [9; 32],
            expires_at: Timestamp::from_unix_secs(5),
        };
        assert_eq!(CodeRecord::decode(&code.encode()).unwrap(), code);
        assert!(CodeRecord::decode(&code.encode()[1..]).is_err());
    }

    #[test]
    fn tokens_carry_the_tag_and_parse_strictly() {
        let keys = Keyring::generate();
        let token = ChallengeToken::generate(&[7; TAG_BYTES]);
        let parsed = ChallengeToken::parse(token.as_str()).unwrap();
        let (tag, id) = parsed.locate(&keys).unwrap();
        assert_eq!(tag, [7; TAG_BYTES]);
        let other = ChallengeToken::generate(&[7; TAG_BYTES]);
        assert_ne!(other.locate(&keys).unwrap().1, id, "ids differ per token");
        let (made, made_id) = ChallengeToken::generate_located(&[9; TAG_BYTES], &keys);
        assert_eq!(made.locate(&keys).unwrap(), ([9; TAG_BYTES], made_id));
        assert!(ChallengeToken::parse(&token.as_str()[..token.as_str().len() - 1]).is_err());
        assert!(ChallengeToken::parse(&format!("{}A", token.as_str())).is_err());
        assert!(ChallengeToken::parse("tfc1_AAAA").is_err());
    }
}
