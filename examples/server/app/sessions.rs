//! Sessions: a server-side record per sign-in, short-lived JWT access tokens naming it, and
//! refresh tokens that rotate on use.
//!
//! - A **session** is a record on the server (here in memory; a real host keeps it in its
//!   database): the user, the hash of the one live refresh token, when it ends. Logout deletes it.
//! - An **access token** is an HS256 JWT (`jsonwebtoken`) with `sub` (the user), `sid` (the
//!   session), `iat` and `exp` (15 minutes). Each request checks the signature, the expiry on the
//!   application's clock, and that the session is still there: so logout ends the access token
//!   at once, not 15 minutes later.
//! - A **refresh token** is 256 random bits, stored only as its SHA-256 (a high-entropy token
//!   needs no slow hash). Each use rotates it: the old one is spent, and a spent token presented
//!   again means it leaked (the thief or the user used it first), so the whole session, the
//!   family of every token rotated from the same sign-in, is revoked (OAuth 2.0 Security BCP
//!   §4.14.2).
//! - A login challenge is the crate's [`twofactor::ChallengeToken`]: it is neither a JWT nor a
//!   refresh token, and neither of those passes as a challenge.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twofactor::clock::Timestamp;
use zeroize::Zeroizing;

/// How long an access token is accepted.
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is accepted, unless rotated or revoked first.
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Refresh tokens start with this, so that no other token is taken for one.
const REFRESH_PREFIX: &str = "rt1_";
/// Longer input is refused before any decoding.
const MAX_TOKEN_LEN: usize = 2048;
/// Expired sessions are swept at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The claims of an access token.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    iat: u64,
    exp: u64,
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

/// One sign-in and every token rotated from it.
struct Session {
    user: String,
    /// SHA-256 of the live refresh token.
    refresh: [u8; 32],
    /// When the live refresh token lapses, and the session with it.
    expires: u64,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    /// SHA-256 of every refresh token issued, live or spent → its session, so that a spent
    /// token presented again is recognised and its session revoked.
    refresh_index: HashMap<[u8; 32], String>,
    last_sweep: u64,
}

/// Issues and checks tokens, and keeps the sessions.
pub(crate) struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sessions([redacted])")
    }
}

impl Sessions {
    /// Access tokens signed with a key derived from `secret` (for instance the text of
    /// `TWOFACTOR_KEY`). HKDF with its own label keeps this key independent of every key the
    /// crate derives from the same secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"twofactor server example"), secret);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
        let _ = hk.expand(b"access token jwt key", key.as_mut());
        let mut validation = Validation::new(Algorithm::HS256);
        // The expiry is checked against the application's clock (which tests move), below.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        Sessions {
            encoding: EncodingKey::from_secret(key.as_ref()),
            decoding: DecodingKey::from_secret(key.as_ref()),
            validation,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Access tokens signed with a fresh random key: they die with the process (as the
    /// sessions, which live in its memory, do anyway).
    pub(crate) fn random() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(secret.as_mut());
        Self::from_secret(secret.as_ref())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `user`, with its first token pair.
    pub(crate) fn issue(&self, user: &str, now: Timestamp) -> TokenPair {
        let sid = random_text(16);
        let (refresh_token, hash) = new_refresh_token();
        {
            let mut inner = self.lock();
            inner.sweep(now);
            inner.refresh_index.insert(hash, sid.clone());
            inner.sessions.insert(
                sid.clone(),
                Session {
                    user: user.to_owned(),
                    refresh: hash,
                    expires: now.saturating_add(REFRESH_TTL).as_unix_secs(),
                },
            );
        }
        self.pair(user, &sid, refresh_token, now)
    }

    fn pair(&self, user: &str, sid: &str, refresh_token: String, now: Timestamp) -> TokenPair {
        let claims = Claims {
            sub: user.to_owned(),
            sid: sid.to_owned(),
            iat: now.as_unix_secs(),
            exp: now.saturating_add(ACCESS_TTL).as_unix_secs(),
        };
        // HS256 over a struct of strings and numbers does not fail.
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .unwrap_or_default();
        TokenPair {
            access_token,
            refresh_token,
            expires_in: ACCESS_TTL.as_secs(),
        }
    }

    /// The user of a genuine, unexpired access token whose session is still live.
    pub(crate) fn verify_access(&self, token: &str, now: Timestamp) -> Option<String> {
        let claims = self.open_access(token, now)?;
        let inner = self.lock();
        let session = inner.sessions.get(&claims.sid)?;
        (session.user == claims.sub && session.expires > now.as_unix_secs()).then_some(claims.sub)
    }

    fn open_access(&self, token: &str, now: Timestamp) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN || token.starts_with(REFRESH_PREFIX) {
            return None;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        (claims.exp > now.as_unix_secs()).then_some(claims)
    }

    /// Spends a refresh token for a new pair of the same session. A spent token presented
    /// again revokes the session: every token of that family stops working.
    pub(crate) fn refresh(&self, token: &str, now: Timestamp) -> Option<TokenPair> {
        let hash = refresh_hash(token)?;
        let mut inner = self.lock();
        let sid = inner.refresh_index.get(&hash)?.clone();
        let session = inner.sessions.get(&sid)?;
        if session.expires <= now.as_unix_secs() {
            return None;
        }
        if session.refresh != hash {
            // Reuse of a spent token: the family is compromised.
            inner.sessions.remove(&sid);
            tracing::warn!("a spent refresh token was presented again: session revoked");
            return None;
        }
        let session = inner.sessions.get_mut(&sid)?;
        let (refresh_token, next) = new_refresh_token();
        session.refresh = next;
        session.expires = now.saturating_add(REFRESH_TTL).as_unix_secs();
        let user = session.user.clone();
        inner.refresh_index.insert(next, sid.clone());
        drop(inner);
        Some(self.pair(&user, &sid, refresh_token, now))
    }

    /// Ends the session of an access token or of a refresh token (live or spent). Unknown,
    /// expired or foreign tokens are ignored.
    pub(crate) fn revoke(&self, access: Option<&str>, refresh: Option<&str>, now: Timestamp) {
        let by_access = access.and_then(|t| self.open_access(t, now)).map(|c| c.sid);
        let mut inner = self.lock();
        let by_refresh = refresh
            .and_then(refresh_hash)
            .and_then(|h| inner.refresh_index.get(&h).cloned());
        for sid in by_access.into_iter().chain(by_refresh) {
            inner.sessions.remove(&sid);
        }
    }
}

impl Inner {
    /// Drops lapsed sessions and the index entries of gone sessions, at most once a minute.
    fn sweep(&mut self, now: Timestamp) {
        let now = now.as_unix_secs();
        if now < self.last_sweep.saturating_add(SWEEP_EVERY.as_secs()) {
            return;
        }
        self.last_sweep = now;
        self.sessions.retain(|_, s| s.expires > now);
        let sessions = &self.sessions;
        self.refresh_index
            .retain(|_, sid| sessions.contains_key(sid));
    }
}

/// A new refresh token and its hash.
fn new_refresh_token() -> (String, [u8; 32]) {
    let token = format!("{REFRESH_PREFIX}{}", random_text(32));
    let hash = Sha256::digest(token.as_bytes()).into();
    (token, hash)
}

/// The stored form of a refresh token, for input that looks like one.
fn refresh_hash(token: &str) -> Option<[u8; 32]> {
    (token.len() <= MAX_TOKEN_LEN && token.starts_with(REFRESH_PREFIX))
        .then(|| Sha256::digest(token.as_bytes()).into())
}

/// `bytes` random bytes as base64url.
fn random_text(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}
