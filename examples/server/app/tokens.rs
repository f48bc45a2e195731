//! The example's own session tokens: a small HMAC-SHA256 token with a scope and an expiry.
//!
//! Wire form: `tfx1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key, "tfx1." ‖ claims))>`.
//! There is one algorithm and no header to choose it, so there is no `alg` confusion to guard
//! against, and the only dependencies are `hmac` and `sha2`, which the crate already uses.
//!
//! - An access token says `scope: "access"` and lives 15 minutes; only it opens the API.
//! - A refresh token says `scope: "refresh"`, lives 7 days, is single use (each refresh rotates
//!   it) and is revoked on logout. The server keeps the ids of the live ones.
//! - A login challenge is the crate's [`twofactor::ChallengeToken`], which has its own format and
//!   no MAC under this key: it never passes as an access token, and an access token never passes
//!   as a challenge.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use twofactor::Timestamp;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "tfx1.";
/// Longer input is refused before any decoding.
const MAX_TOKEN_LEN: usize = 1024;
/// How long an access token is accepted.
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is accepted, unless rotated or revoked first.
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// Opens the API for `sub`.
    Access,
    /// Buys a new token pair once.
    Refresh,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    scope: Scope,
    exp: u64,
    jti: String,
}

/// An access token and a refresh token, as handed to the client.
pub(crate) struct TokenPair {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenPair([redacted])")
    }
}

/// Issues and checks tokens, and remembers which refresh tokens are live.
pub(crate) struct Tokens {
    key: Zeroizing<[u8; 32]>,
    /// Live refresh token ids → (user, expiry).
    live_refresh: Mutex<HashMap<String, (String, u64)>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens([redacted])")
    }
}

impl Tokens {
    /// Tokens signed with a key derived from `secret` (for instance the text of `TWOFACTOR_KEY`),
    /// so that tokens survive a restart when the secret does. HKDF with its own label keeps this
    /// key independent of every key the crate derives from the same secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"twofactor server example"), secret);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
        let _ = hk.expand(b"session token mac key", key.as_mut());
        Tokens {
            key,
            live_refresh: Mutex::new(HashMap::new()),
        }
    }

    /// Tokens signed with a fresh random key: they die with the process.
    pub(crate) fn random() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(secret.as_mut());
        Self::from_secret(secret.as_ref())
    }

    /// A new access token and refresh token for `user`.
    pub(crate) fn issue(&self, user: &str, now: Timestamp) -> TokenPair {
        let refresh_exp = now.saturating_add(REFRESH_TTL).as_unix_secs();
        let refresh_jti = random_id();
        {
            let mut live = self.live();
            live.retain(|_, (_, exp)| *exp > now.as_unix_secs());
            live.insert(refresh_jti.clone(), (user.to_owned(), refresh_exp));
        }
        TokenPair {
            access_token: self.sign(&Claims {
                sub: user.to_owned(),
                scope: Scope::Access,
                exp: now.saturating_add(ACCESS_TTL).as_unix_secs(),
                jti: random_id(),
            }),
            refresh_token: self.sign(&Claims {
                sub: user.to_owned(),
                scope: Scope::Refresh,
                exp: refresh_exp,
                jti: refresh_jti,
            }),
            expires_in: ACCESS_TTL.as_secs(),
        }
    }

    /// The user an access token was issued to, if it is genuine, an access token, and not expired.
    pub(crate) fn verify_access(&self, token: &str, now: Timestamp) -> Option<String> {
        self.open(token, Scope::Access, now).map(|c| c.sub)
    }

    /// Spends a refresh token: a new pair, or `None` when the token is not a live refresh token.
    pub(crate) fn refresh(&self, token: &str, now: Timestamp) -> Option<TokenPair> {
        let claims = self.open(token, Scope::Refresh, now)?;
        // Taking the id out is the single-use check: a second use finds nothing.
        let (user, _) = self.live().remove(&claims.jti)?;
        (user == claims.sub).then(|| self.issue(&user, now))
    }

    /// Revokes a refresh token (logout). Unknown, expired or foreign tokens are ignored.
    pub(crate) fn revoke(&self, token: &str, now: Timestamp) {
        if let Some(claims) = self.open(token, Scope::Refresh, now) {
            self.live().remove(&claims.jti);
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.live_refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
            .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
        mac.update(PREFIX.as_bytes());
        mac
    }

    fn sign(&self, claims: &Claims) -> String {
        // Serialising a struct of strings and numbers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{PREFIX}{payload}.{tag}")
    }

    fn open(&self, token: &str, scope: Scope, now: Timestamp) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, tag) = token.strip_prefix(PREFIX)?.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Constant-time comparison of the tag.
        mac.verify_slice(&tag).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.scope == scope && claims.exp > now.as_unix_secs()).then_some(claims)
    }
}

/// 128 random bits as base64url.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
