//! The values of the security-key factor: its policy, the options sent to the browser, what a
//! host lists. No flow here; the ceremonies live in the parent module.

use std::time::Duration;

use serde::Serialize;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::store::SecurityKeyRecord;

/// The longest label a key may carry, in characters.
pub const MAX_SECURITY_KEY_LABEL: usize = 64;
/// The largest browser response (registration or assertion JSON) the service reads, in bytes.
pub const MAX_SECURITY_KEY_RESPONSE: usize = 64 * 1024;

/// Whether the authenticator must verify its user (PIN or biometrics) besides their presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserVerification {
    /// Not asked for: a touch of the key is enough, and any FIDO2 or U2F security key works.
    /// The password is the first factor and the key's presence the second, as with the classic
    /// second-factor keys. The default.
    ///
    /// (The in-between, "preferred", is not offered: `webauthn-rs` pairs it with a
    /// credential-protection request that Chromium refuses to register, and an authenticator
    /// that honours it asks for a PIN after all.)
    #[default]
    Discouraged,
    /// Required: only authenticators that check a PIN or biometrics pass (passkeys, FIDO2 keys
    /// with a PIN), through `webauthn-rs`'s passkey ceremonies. A key registered before the
    /// change keeps working only if it can verify its user.
    Required,
}

/// Security keys and passkeys: the relying party and the rules (field of
/// [`Policy::security_keys`](crate::Policy)).
///
/// ```
/// use twofactor::{Policy, security_key::SecurityKeyPolicy, TwoFactorService, Keyring};
/// use twofactor::{store::MemoryOtpStore, store::MemoryEnrollmentStore, testing::RecordingMailer};
///
/// let mut policy = Policy::default();
/// policy.security_keys = Some(SecurityKeyPolicy::new("example.com", "https://example.com"));
/// let tf = TwoFactorService::builder()
///     .issuer("Acme")
///     .keys(Keyring::generate())
///     .otp_store(MemoryOtpStore::new())
///     .enrollments(MemoryEnrollmentStore::new())
///     .mailer(RecordingMailer::new())
///     .policy(policy)
///     .build();
/// assert!(tf.is_ok());
///
/// // The origin must belong to the relying party id.
/// let mut policy = Policy::default();
/// policy.security_keys = Some(SecurityKeyPolicy::new("example.com", "https://evil.test"));
/// assert!(policy.validate().is_err());
/// ```
///
/// # Where the ceremony state lives, and why that is safe
///
/// Between `start` and `finish`, a WebAuthn ceremony has server-side state: the random
/// challenge the authenticator must sign, the credentials allowed to sign it and the
/// user-verification rule. `webauthn-rs` keeps it out of serialisation unless its
/// `danger-allow-state-serialisation` feature is on, because state that can be replayed, swapped
/// between users or kept alive turns one finished ceremony into a reusable pass. Here it is
/// kept in the [`OtpStore`](crate::store::OtpStore) under exactly the rules that make that safe:
///
/// - **single use**: a login's state is part of its challenge record and leaves with it when the
///   challenge passes (of concurrent passes exactly one wins); a registration's state is taken
///   (read and removed in one store call) by the finish, a step-up's by its attempt;
/// - **expiring**: it lives as long as the challenge
///   ([`Policy::challenge_ttl`](crate::Policy::challenge_ttl)) or
///   [`SecurityKeyPolicy::ceremony_ttl`], judged by the service's clock;
/// - **bound to the user and the challenge**: it is stored under the user's keyed tag (and, for a
///   login, under a keyed hash of the challenge token, which the client never learns), and the
///   user handle inside it is a keyed hash of the user id;
/// - **never sent to the client**: the client gets the public options only. The state holds no
///   secret (a nonce and public keys), so a store that leaks it gives nothing to sign with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityKeyPolicy {
    /// The relying party id: the site's registrable domain (`example.com`). Credentials are
    /// bound to it for good: changing it strands every registered key.
    pub rp_id: String,
    /// The name the browser shows for the site. Default: the relying party id.
    pub rp_name: String,
    /// The origins allowed to run ceremonies (`https://example.com`; `http://localhost:8080` in
    /// development). Each must be the relying party id or a subdomain of it.
    pub origins: Vec<String>,
    /// The user-verification rule. Default [`UserVerification::Discouraged`].
    pub user_verification: UserVerification,
    /// Whether a security key may be a user's only second factor. Default `false`: a key is added
    /// beside an authenticator app, email or phone factor, so that a lost key is no lock-out
    /// ([`Error::FallbackFactorRequired`] otherwise). With `true`, a key alone enables two-factor
    /// authentication; the user should then keep backup codes
    /// ([`backup_codes().regenerate`](crate::service::BackupCodes::regenerate)).
    pub allow_key_alone: bool,
    /// Keys kept per user. Default 10; 1 to 20.
    pub max_keys: u32,
    /// How long a registration or step-up ceremony may take. Default 300 s; 30 s to 10 min.
    pub ceremony_ttl: Duration,
}

impl SecurityKeyPolicy {
    /// A policy for the relying party `rp_id` with one allowed origin, and the defaults.
    pub fn new(rp_id: impl Into<String>, origin: impl Into<String>) -> Self {
        let rp_id = rp_id.into();
        SecurityKeyPolicy {
            rp_name: rp_id.clone(),
            rp_id,
            origins: vec![origin.into()],
            user_verification: UserVerification::default(),
            allow_key_alone: false,
            max_keys: 10,
            ceremony_ttl: Duration::from_secs(300),
        }
    }

    /// Checks the values (and that `webauthn-rs` accepts the relying party and its origins).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first unusable value.
    pub fn validate(&self) -> Result<(), Error> {
        self.build().map(|_| ())
    }

    /// The relying party, configured.
    pub(crate) fn build(&self) -> Result<Webauthn, Error> {
        let bad = |what: &str| Err(Error::InvalidConfig(format!("security_keys: {what}")));
        if !(1..=20).contains(&self.max_keys) {
            return bad("max_keys must be 1 to 20");
        }
        if self.ceremony_ttl < Duration::from_secs(30)
            || self.ceremony_ttl > crate::code::MAX_CODE_TTL
        {
            return bad("ceremony_ttl must be 30 s to 10 min");
        }
        if self.rp_name.is_empty() || self.rp_name.chars().any(char::is_control) {
            return bad("rp_name must be non-empty, without control characters");
        }
        let origins = self
            .origins
            .iter()
            .map(|o| Url::parse(o))
            .collect::<Result<Vec<_>, _>>();
        let Ok(origins) = origins else {
            return bad("every origin must be a URL such as https://example.com");
        };
        let Some((first, rest)) = origins.split_first() else {
            return bad("at least one origin is required");
        };
        for origin in &origins {
            let host = origin.host_str().unwrap_or_default();
            let dotted = format!(".{}", self.rp_id);
            if host != self.rp_id && !host.ends_with(&dotted) {
                return bad("every origin must be the relying party id or a subdomain of it");
            }
        }
        let Ok(builder) = WebauthnBuilder::new(&self.rp_id, first) else {
            return bad("the relying party id does not fit the origin");
        };
        let mut builder = builder
            .rp_name(&self.rp_name)
            .timeout(self.ceremony_ttl)
            // Presence only in the security-key ceremonies when verification is not asked for
            // (the passkey ceremonies, used for `Required`, always ask for it).
            .danger_set_user_presence_only_security_keys(
                self.user_verification == UserVerification::Discouraged,
            );
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        builder
            .build()
            .or_else(|_| bad("webauthn-rs refused the relying party"))
    }
}

/// Browser options for a WebAuthn ceremony: the JSON to hand to `navigator.credentials.create`
/// (registration) or `navigator.credentials.get` (login, step-up), after decoding its base64url
/// fields into `ArrayBuffer`s (or with `PublicKeyCredential.parseCreationOptionsFromJSON` /
/// `parseRequestOptionsFromJSON`). Public: it holds a random challenge and credential ids.
///
/// Serializes as `{"publicKey": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct SecurityKeyOptions(serde_json::Value);

impl SecurityKeyOptions {
    pub(crate) fn encode<T: Serialize>(options: &T) -> Result<Self, Error> {
        serde_json::to_value(options)
            .map(SecurityKeyOptions)
            .map_err(|_| Error::Internal("encoding WebAuthn options failed"))
    }

    /// The options as a JSON value.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }

    /// The inner `publicKey` object's `challenge` (base64url), for tests and logs of a ceremony.
    pub fn challenge(&self) -> Option<&str> {
        self.0.get("publicKey")?.get("challenge")?.as_str()
    }
}

/// A registered security key, as listed to its user: never the credential itself.
///
/// Serializes with its field names (times in unix seconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecurityKeyInfo {
    /// Its public id (`sk_…`), for renaming and removal.
    pub id: String,
    /// The user's name for it.
    pub label: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last passed a check.
    pub last_used_at: Option<Timestamp>,
}

impl From<&SecurityKeyRecord> for SecurityKeyInfo {
    fn from(k: &SecurityKeyRecord) -> Self {
        SecurityKeyInfo {
            id: k.id.clone(),
            label: k.label.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}
