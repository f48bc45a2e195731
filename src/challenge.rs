//! The login challenge: an opaque, typed token and the record it points to.
//!
//! A [`ChallengeToken`] is 256 bits from the OS CSPRNG, shown as `tfc1_` followed by 43 base64url
//! characters. The store never sees it: records live under a keyed hash of it, so a leaked store
//! gives no usable token. The record names the user, the purpose and the methods on offer, and
//! nothing else: no password, no code.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::keys::{hex, Keyring};
use crate::method::Method;

const PREFIX: &str = "tfc1_";
const TOKEN_BYTES: usize = 32;

/// An opaque login challenge token, handed to the client after the password step.
///
/// `Debug` is redacted and the token is zeroized on drop. Parse what a client sends back with
/// [`ChallengeToken::parse`]: malformed input is an error, never a panic.
///
/// ```
/// use twofactor::ChallengeToken;
/// assert!(ChallengeToken::parse("not a token").is_err());
/// assert!(ChallengeToken::parse("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChallengeToken(String);

impl fmt::Debug for ChallengeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeToken([redacted])")
    }
}

impl ChallengeToken {
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let t = ChallengeToken(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)));
        bytes.zeroize();
        t
    }

    /// Parses a token sent back by a client.
    ///
    /// # Errors
    /// [`Error::InvalidChallenge`] when the text is not a well-formed token.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let body = text.strip_prefix(PREFIX).ok_or(Error::InvalidChallenge)?;
        if body.len() != 43 {
            return Err(Error::InvalidChallenge);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Error::InvalidChallenge)?;
        if decoded.len() != TOKEN_BYTES {
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

    /// The id the token's records are stored under: a keyed hash, never the token itself.
    pub(crate) fn id(&self, keys: &Keyring) -> String {
        let mac = keys.mac(&[b"challenge", self.0.as_bytes()]);
        hex(mac.get(..16).unwrap_or(&mac))
    }
}

/// What a challenge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Purpose {
    Login,
}

/// The stored state of a challenge.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChallengeRecord {
    pub(crate) v: u32,
    pub(crate) user: String,
    pub(crate) purpose: Purpose,
    pub(crate) methods: Vec<Method>,
    pub(crate) email: Option<String>,
    pub(crate) created_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

/// The second step of a login: hand [`Challenge::token`] to the client and ask for a code.
#[derive(Debug)]
pub struct Challenge {
    pub(crate) token: ChallengeToken,
    pub(crate) methods: Vec<Method>,
    pub(crate) expires_at: Timestamp,
    pub(crate) email_sent: bool,
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
}
