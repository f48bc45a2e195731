//! Security keys and passkeys (WebAuthn) as a second factor, through the `webauthn-rs` crate
//! (feature `webauthn`): registration, the login answer, step-up, listing, renaming, removal.
//!
//! A key answers the same challenge as the codes do: [`begin_login`] offers
//! [`Method::SecurityKey`] with the request options for `navigator.credentials.get`, and the
//! browser's assertion goes to [`verify_login`] (or [`verify_login_security_key`]). It is counted
//! against the challenge's and the user's limits before it is checked, and a pass consumes the
//! challenge, exactly as a code's does.
//!
//! Why the ceremony state may live in the store: see [`SecurityKeyPolicy`].
//!
//! [`begin_login`]: TwoFactorService::begin_login
//! [`verify_login`]: TwoFactorService::verify_login
//! [`verify_login_security_key`]: TwoFactorService::verify_login_security_key

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::Serialize;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url,
    Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::challenge::ChallengeToken;
use crate::clock::Timestamp;
use crate::email_code::CodePurpose;
use crate::error::{Error, StoreError};
use crate::events::Event;
use crate::mail::MailContent;
use crate::method::{Method, Verified};
use crate::service::{check_user, TwoFactorService};
use crate::store::{EnrollmentRecord, Revision, SecurityKeyRecord};

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
/// use twofactor::{Policy, SecurityKeyPolicy, TwoFactorService, Keyring};
/// use twofactor::{MemoryOtpStore, MemoryEnrollmentStore, RecordingMailer};
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
/// kept in the [`OtpStore`](crate::OtpStore) under exactly the rules that make that safe:
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
    /// ([`regenerate_backup_codes`](crate::TwoFactorService::regenerate_backup_codes)).
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
        if self.ceremony_ttl < Duration::from_secs(30) || self.ceremony_ttl > crate::MAX_CODE_TTL {
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
    fn from<T: Serialize>(options: &T) -> Result<Self, Error> {
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

/// The purposes of the ceremony states kept under the user's pending keys.
pub(crate) const REGISTRATION: CodePurpose = CodePurpose::SecurityKeyRegistration;
pub(crate) const STEP_UP: CodePurpose = CodePurpose::SecurityKeyStepUp;

/// The first byte of a stored ceremony state: which `webauthn-rs` flow it belongs to.
const FLOW_SECURITY_KEY: u8 = 1;
const FLOW_PASSKEY: u8 = 2;

/// A parsed assertion: what the browser returned from `navigator.credentials.get`.
pub(crate) struct Assertion(PublicKeyCredential);

impl Assertion {
    /// Whether `input` is meant as an assertion rather than a code: a JSON object.
    pub(crate) fn looks_like(input: &str) -> bool {
        input.trim_start().starts_with('{')
    }

    /// Parses the assertion JSON. Malformed or oversized input is [`Error::MalformedCode`].
    pub(crate) fn parse(input: &str) -> Result<Self, Error> {
        if input.len() > MAX_SECURITY_KEY_RESPONSE {
            return Err(Error::MalformedCode);
        }
        serde_json::from_str(input)
            .map(Assertion)
            .map_err(|_| Error::MalformedCode)
    }
}

/// What checking an assertion against a ceremony state found.
pub(crate) enum Checked {
    /// The signature is good; the key's record is to be brought up to date with it.
    Good(AuthenticationResult),
    /// The signature counter went backwards against the ceremony's snapshot: the credential id
    /// of the key that signed.
    Cloned(Vec<u8>),
    /// Anything else: another origin, another challenge, a bad signature, an unknown key.
    Bad,
}

fn label_ok(label: &str) -> Result<String, Error> {
    let label = label.trim();
    let chars = label.chars().count();
    if chars == 0 || chars > MAX_SECURITY_KEY_LABEL || label.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "a security key label must be 1 to 64 characters without control characters",
        ));
    }
    Ok(label.to_owned())
}

fn key_id() -> String {
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    format!("sk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn corrupt(what: &'static str) -> Error {
    Error::Store(StoreError::corrupt(what))
}

/// A stored credential, read as `webauthn-rs`'s security-key type (the passkey type has the
/// same JSON: both wrap one credential).
fn credential(k: &SecurityKeyRecord) -> Result<SecurityKey, Error> {
    serde_json::from_str(&k.credential).map_err(|_| corrupt("stored security key"))
}

fn as_passkey(k: &SecurityKey) -> Result<Passkey, Error> {
    serde_json::to_value(k)
        .and_then(serde_json::from_value)
        .map_err(|_| corrupt("stored security key"))
}

/// A flow tag and the state's JSON.
fn tagged<T: Serialize>(flow: u8, state: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![flow];
    serde_json::to_writer(&mut out, state)
        .map_err(|_| Error::Internal("encoding WebAuthn state failed"))?;
    Ok(out)
}

impl TwoFactorService {
    fn relying_party(&self) -> Result<&Webauthn, Error> {
        self.inner.webauthn.as_deref().ok_or_else(|| {
            Error::InvalidConfig("security keys are not configured (Policy::security_keys)".into())
        })
    }

    fn key_policy(&self) -> Result<&SecurityKeyPolicy, Error> {
        self.inner.policy.security_keys.as_ref().ok_or_else(|| {
            Error::InvalidConfig("security keys are not configured (Policy::security_keys)".into())
        })
    }

    /// The user handle the authenticator keeps: a keyed hash of the user id, so that a key
    /// never carries the id itself.
    fn user_handle(&self, user: &str) -> Uuid {
        let mac = self.inner.keys.mac(&[b"webauthn user", user.as_bytes()]);
        Uuid::from_bytes(mac.first_chunk::<16>().copied().unwrap_or_default())
    }

    /// Starts registering a security key or passkey for `user`: the options for
    /// `navigator.credentials.create`. The user's keys already registered are excluded (the
    /// browser refuses to register one twice). Finish with
    /// [`finish_security_key_registration`](Self::finish_security_key_registration) within
    /// [`SecurityKeyPolicy::ceremony_ttl`]; a new start replaces an unfinished one.
    ///
    /// On an account that already has a factor this needs a fresh one, as adding any factor
    /// does (see [`reauthenticate`](Self::reauthenticate)).
    ///
    /// # Errors
    /// [`Error::ReauthRequired`]; [`Error::FallbackFactorRequired`] when the policy does not let
    /// a key stand alone and the user has no code factor; [`Error::InvalidInput`] for an
    /// unusable `display_name` or when the user has [`SecurityKeyPolicy::max_keys`] keys;
    /// [`Error::InvalidConfig`] without [`Policy::security_keys`](crate::Policy); store errors.
    pub async fn start_security_key_registration(
        &self,
        user: &str,
        display_name: &str,
    ) -> Result<SecurityKeyOptions, Error> {
        check_user(user)?;
        let name = label_ok(display_name)
            .map_err(|_| Error::InvalidInput("display_name must be 1 to 64 characters"))?;
        let rp = self.relying_party()?;
        let policy = self.key_policy()?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        self.require_fresh_factor(user, &rec, now).await?;
        self.may_add_key(&rec)?;
        let exclude = rec
            .security_keys
            .iter()
            .map(|k| credential(k).map(|c| c.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let handle = self.user_handle(user);
        let refused = |_: WebauthnError| Error::Internal("starting a WebAuthn registration failed");
        let (options, state) = match policy.user_verification {
            UserVerification::Discouraged => {
                let (o, s) = rp
                    .start_securitykey_registration(handle, &name, &name, Some(exclude), None, None)
                    .map_err(refused)?;
                (
                    SecurityKeyOptions::from(&o)?,
                    tagged(FLOW_SECURITY_KEY, &s)?,
                )
            }
            UserVerification::Required => {
                let (o, s): (CreationChallengeResponse, PasskeyRegistration) = rp
                    .start_passkey_registration(handle, &name, &name, Some(exclude))
                    .map_err(refused)?;
                (SecurityKeyOptions::from(&o)?, tagged(FLOW_PASSKEY, &s)?)
            }
        };
        let pending = self.user_keys(user).pending(REGISTRATION);
        self.inner
            .otp
            .put(
                &pending,
                &state,
                now.saturating_add(policy.ceremony_ttl),
                now,
            )
            .await?;
        self.event(Event::FactorSetupStarted {
            user: user.to_owned(),
            method: Method::SecurityKey,
        });
        Ok(options)
    }

    /// Refuses a key the user may not add now: past the policy's count, or alone when the policy
    /// wants a code factor beside keys.
    fn may_add_key(&self, rec: &EnrollmentRecord) -> Result<(), Error> {
        let policy = self.key_policy()?;
        if rec.security_keys.len() >= policy.max_keys as usize {
            return Err(Error::InvalidInput(
                "the user has as many security keys as the policy allows",
            ));
        }
        if !policy.allow_key_alone && !rec.has_code_factor() {
            return Err(Error::FallbackFactorRequired);
        }
        Ok(())
    }

    /// Finishes a registration with the browser's response to `navigator.credentials.create`
    /// (the `PublicKeyCredential` as JSON, base64url fields) and stores the key under `label`.
    /// The ceremony is single use: it is taken before the response is checked, so a failed
    /// finish needs a new start.
    ///
    /// The user's email factor is told; the event is [`Event::FactorEnabled`] with
    /// [`Method::SecurityKey`].
    ///
    /// # Errors
    /// [`Error::NothingPending`] without a live registration; [`Error::SecurityKeyRejected`]
    /// for a response that fails verification (another origin, another ceremony, malformed);
    /// [`Error::AlreadyEnrolled`] for a key the user already has; [`Error::InvalidInput`] for
    /// an unusable label or past [`SecurityKeyPolicy::max_keys`];
    /// [`Error::FallbackFactorRequired`]; store errors.
    pub async fn finish_security_key_registration(
        &self,
        user: &str,
        response_json: &str,
        label: &str,
    ) -> Result<SecurityKeyInfo, Error> {
        check_user(user)?;
        let label = label_ok(label)?;
        let rp = self.relying_party()?;
        let now = self.now();
        let pending = self.user_keys(user).pending(REGISTRATION);
        let state = self
            .inner
            .otp
            .take(&pending, now)
            .await?
            .ok_or(Error::NothingPending)?;
        if response_json.len() > MAX_SECURITY_KEY_RESPONSE {
            return Err(Error::SecurityKeyRejected);
        }
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response_json).map_err(|_| Error::SecurityKeyRejected)?;
        let (flow, body) = state
            .split_first()
            .ok_or_else(|| corrupt("ceremony state"))?;
        let key = match *flow {
            FLOW_SECURITY_KEY => {
                let s: SecurityKeyRegistration =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                rp.finish_securitykey_registration(&response, &s)
                    .map_err(|_| Error::SecurityKeyRejected)?
            }
            FLOW_PASSKEY => {
                let s: PasskeyRegistration =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                let passkey = rp
                    .finish_passkey_registration(&response, &s)
                    .map_err(|_| Error::SecurityKeyRejected)?;
                serde_json::to_value(&passkey)
                    .and_then(serde_json::from_value)
                    .map_err(|_| Error::Internal("converting a passkey failed"))?
            }
            _ => return Err(corrupt("ceremony state")),
        };
        let json = serde_json::to_string(&key)
            .map_err(|_| Error::Internal("encoding a security key failed"))?;
        let record = SecurityKeyRecord::new(key_id(), label, json, now);
        let info = SecurityKeyInfo::from(&record);
        let saved = self
            .update(user, |rec| {
                for k in &rec.security_keys {
                    if credential(k)?.cred_id() == key.cred_id() {
                        return Err(Error::AlreadyEnrolled);
                    }
                }
                self.may_add_key(rec)?;
                rec.security_keys.push(record.clone());
                Ok(true)
            })
            .await?;
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::SecurityKey,
        });
        let to = saved.email.as_ref().map(|e| e.address.as_str());
        self.notify(
            user,
            to,
            MailContent::FactorAdded {
                method: Method::SecurityKey,
            },
        )
        .await;
        Ok(info)
    }

    /// The user's security keys, oldest first.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn security_keys(&self, user: &str) -> Result<Vec<SecurityKeyInfo>, Error> {
        check_user(user)?;
        let (rec, _) = self.load(user).await?;
        Ok(rec
            .security_keys
            .iter()
            .map(SecurityKeyInfo::from)
            .collect())
    }

    /// Renames one of the user's keys: the renamed key, or `None` when the user has no such key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unusable label; store errors.
    pub async fn rename_security_key(
        &self,
        user: &str,
        id: &str,
        label: &str,
    ) -> Result<Option<SecurityKeyInfo>, Error> {
        check_user(user)?;
        let label = label_ok(label)?;
        let rec = self
            .update(user, |rec| {
                match rec.security_keys.iter_mut().find(|k| k.id == id) {
                    Some(k) if k.label != label => k.label.clone_from(&label),
                    _ => return Ok(false),
                }
                Ok(true)
            })
            .await?;
        Ok(rec
            .security_keys
            .iter()
            .find(|k| k.id == id)
            .map(SecurityKeyInfo::from))
    }

    /// Removes one of the user's keys. The same rules as [`disable`](Self::disable): the
    /// password (checked by the host's [`PasswordVerifier`](crate::PasswordVerifier)) and a
    /// fresh factor (a code, or an assertion of any of the user's keys, this one included; see
    /// [`start_security_key_step_up`](Self::start_security_key_step_up)). When it was the
    /// user's last factor, two-factor authentication is turned off, as `disable` does (backup
    /// codes and trusted devices go too).
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] when the user has no such key; then as [`disable`](Self::disable).
    pub async fn remove_security_key(
        &self,
        user: &str,
        id: &str,
        password: &str,
        code: &str,
    ) -> Result<(), Error> {
        check_user(user)?;
        self.password_verifier()?;
        let (rec, rev) = self.load(user).await?;
        if !rec.security_keys.iter().any(|k| k.id == id) {
            return Err(Error::NotEnrolled);
        }
        self.confirm_with_password(user, (&rec, rev), password, code)
            .await?;
        let mut last = false;
        let saved = self
            .update_from(user, Some((rec, rev)), |rec| {
                let before = rec.security_keys.len();
                rec.security_keys.retain(|k| k.id != id);
                last = !rec.is_enabled();
                Ok(rec.security_keys.len() != before)
            })
            .await?;
        if last {
            self.turn_off(user, &saved).await?;
            return Ok(());
        }
        self.event(Event::SecurityKeyRemoved {
            user: user.to_owned(),
            key: id.to_owned(),
        });
        let to = saved.email.as_ref().map(|e| e.address.as_str());
        self.notify(
            user,
            to,
            MailContent::FactorRemoved {
                method: Method::SecurityKey,
            },
        )
        .await;
        Ok(())
    }

    /// Starts a step-up with a security key: the options for `navigator.credentials.get`. The
    /// browser's assertion then goes where a code would: [`reauthenticate`](Self::reauthenticate),
    /// [`disable`](Self::disable), [`regenerate_backup_codes`](Self::regenerate_backup_codes),
    /// [`remove_security_key`](Self::remove_security_key). It is good for one attempt within
    /// [`SecurityKeyPolicy::ceremony_ttl`]; a new start replaces it.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] when the user has no key; [`Error::InvalidConfig`]; store errors.
    pub async fn start_security_key_step_up(
        &self,
        user: &str,
    ) -> Result<SecurityKeyOptions, Error> {
        check_user(user)?;
        let policy = self.key_policy()?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        let Some((options, state)) = self.start_assertion(&rec)? else {
            return Err(Error::NotEnrolled);
        };
        let pending = self.user_keys(user).pending(STEP_UP);
        let expires = now.saturating_add(policy.ceremony_ttl);
        self.inner
            .otp
            .store_code(&pending, Some((&state, expires)), &[0], now)
            .await?;
        Ok(options)
    }

    /// The options and state of an assertion ceremony over the user's keys; `None` when the
    /// user has none or security keys are not configured.
    pub(crate) fn start_assertion(
        &self,
        rec: &EnrollmentRecord,
    ) -> Result<Option<(SecurityKeyOptions, Vec<u8>)>, Error> {
        let (Some(rp), Some(policy)) = (
            self.inner.webauthn.as_deref(),
            self.inner.policy.security_keys.as_ref(),
        ) else {
            return Ok(None);
        };
        if rec.security_keys.is_empty() {
            return Ok(None);
        }
        let keys = rec
            .security_keys
            .iter()
            .map(credential)
            .collect::<Result<Vec<_>, _>>()?;
        let refused = |_: WebauthnError| Error::Internal("starting a WebAuthn assertion failed");
        let (options, state): (RequestChallengeResponse, Vec<u8>) = match policy.user_verification {
            UserVerification::Discouraged => {
                let (o, s) = rp
                    .start_securitykey_authentication(&keys)
                    .map_err(refused)?;
                (o, tagged(FLOW_SECURITY_KEY, &s)?)
            }
            UserVerification::Required => {
                let passkeys = keys.iter().map(as_passkey).collect::<Result<Vec<_>, _>>()?;
                let (o, s) = rp
                    .start_passkey_authentication(&passkeys)
                    .map_err(refused)?;
                (o, tagged(FLOW_PASSKEY, &s)?)
            }
        };
        Ok(Some((SecurityKeyOptions::from(&options)?, state)))
    }

    /// Checks an assertion against a stored ceremony state. Reads nothing.
    pub(crate) fn check_assertion(
        &self,
        assertion: &Assertion,
        state: &[u8],
    ) -> Result<Checked, Error> {
        let rp = self.relying_party()?;
        let (flow, body) = state
            .split_first()
            .ok_or_else(|| corrupt("ceremony state"))?;
        let outcome = match *flow {
            FLOW_SECURITY_KEY => {
                let s: SecurityKeyAuthentication =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                rp.finish_securitykey_authentication(&assertion.0, &s)
            }
            FLOW_PASSKEY => {
                let s: PasskeyAuthentication =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                rp.finish_passkey_authentication(&assertion.0, &s)
            }
            _ => return Err(corrupt("ceremony state")),
        };
        Ok(match outcome {
            Ok(result) => Checked::Good(result),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // The signature was good but the counter went backwards; webauthn-rs gives no
                // result then, so the key is named by the assertion's credential id.
                Checked::Cloned(assertion.0.raw_id.to_vec())
            }
            Err(_) => Checked::Bad,
        })
    }

    /// Records a good assertion on the key that made it, in one compare-and-swap of the user's
    /// record (starting from `loaded`, the record the caller already holds, when given): a counter at or below the highest seen for that key is a clone signal (refused
    /// and reported) unless the key's last check answered this very ceremony (the same assertion
    /// sent twice: a repeat, which the challenge's single use settles); otherwise the counter,
    /// the flags `webauthn-rs` keeps and the last use are saved.
    pub(crate) async fn record_assertion(
        &self,
        user: &str,
        result: &AuthenticationResult,
        state: &[u8],
        loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        now: Timestamp,
    ) -> Result<KeyUse, Error> {
        let ceremony = ceremony_tag(state);
        let mut outcome = KeyUse::Missing;
        self.update_from(user, loaded, |rec| {
            outcome = KeyUse::Missing;
            for k in rec.security_keys.iter_mut() {
                let mut cred = credential(k)?;
                if cred.cred_id() != result.cred_id() {
                    continue;
                }
                let counter = result.counter();
                if (counter > 0 || k.counter > 0) && counter <= k.counter {
                    outcome = if k.last_ceremony.as_deref() == Some(ceremony.as_str()) {
                        KeyUse::Repeat
                    } else {
                        KeyUse::Cloned(k.id.clone())
                    };
                    return Ok(false);
                }
                cred.update_credential(result);
                k.credential = serde_json::to_string(&cred)
                    .map_err(|_| Error::Internal("encoding a security key failed"))?;
                k.counter = counter;
                k.last_used_at = Some(now);
                k.last_ceremony = Some(ceremony.clone());
                outcome = KeyUse::Recorded;
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        if let KeyUse::Cloned(key) = &outcome {
            self.clone_suspected(user, key.clone());
        }
        Ok(outcome)
    }

    /// A step-up answered with a security key's assertion: one attempt, opened on the pending
    /// step-up ceremony (its own cap) and against the user's run before anything is checked;
    /// the password first when `password` is given. A pass takes the ceremony.
    pub(crate) async fn step_up_with_key(
        &self,
        user: &str,
        (rec, rev): (&EnrollmentRecord, Option<Revision>),
        assertion: &Assertion,
        password: Option<bool>,
        now: Timestamp,
    ) -> Result<Method, Error> {
        let keys = self.user_keys(user);
        let pending = keys.pending(STEP_UP);
        let max = self.inner.policy.code_max_attempts;
        let attempt = self
            .open_attempt(&keys, Some((&pending, max)), Error::NothingPending, now)
            .await?;
        let checked = async {
            if password == Some(false) {
                return Err(Error::InvalidPassword);
            }
            let state = attempt
                .challenge
                .as_ref()
                .map(|c| c.value.as_slice())
                .ok_or(Error::NothingPending)?;
            let loaded = Some((rec.clone(), rev));
            self.assertion_passes(user, assertion, state, loaded, now)
                .await
        }
        .await;
        match checked {
            Ok(true) => {}
            outcome => {
                self.fail_attempt(user, &keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                });
            }
        }
        self.pass_attempt(
            user,
            &keys,
            &attempt,
            (Some(&pending), None),
            Error::NothingPending,
            now,
        )
        .await?;
        if rec.recovery.is_some() {
            self.cancel_recovery(user).await?;
        }
        Ok(Method::SecurityKey)
    }

    /// Checks an assertion against a ceremony's state and records it on the key: whether the
    /// check passes (a clone signal is reported and fails it).
    pub(crate) async fn assertion_passes(
        &self,
        user: &str,
        assertion: &Assertion,
        state: &[u8],
        loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        now: Timestamp,
    ) -> Result<bool, Error> {
        match self.check_assertion(assertion, state)? {
            Checked::Good(result) => Ok(self
                .record_assertion(user, &result, state, loaded, now)
                .await?
                .passes()),
            Checked::Cloned(cred_id) => {
                self.clone_signalled(user, &cred_id).await;
                Ok(false)
            }
            Checked::Bad => Ok(false),
        }
    }

    /// Answers a login challenge with a security key's assertion: the JSON of the
    /// `PublicKeyCredential` that `navigator.credentials.get` returned for
    /// [`Challenge::security_key`](crate::Challenge::security_key)'s options (base64url fields,
    /// as `PublicKeyCredential.toJSON()` writes them).
    ///
    /// The same rules as a code: the attempt is counted against the challenge and the user before
    /// the signature is checked, a failure counts toward the lock, and a pass consumes the
    /// challenge (of concurrent passes, exactly one succeeds). A signature counter at or below
    /// the highest seen for the key is refused and reported
    /// ([`Event::SecurityKeyCloneSuspected`]). [`verify_login`](Self::verify_login) takes the
    /// same JSON.
    ///
    /// # Errors
    /// [`Error::MalformedCode`] for input that is not an assertion; [`Error::InvalidCode`] for
    /// one that fails (another origin, another challenge or user, a removed key, a clone
    /// signal); then as [`verify_login`](Self::verify_login).
    pub async fn verify_login_security_key(
        &self,
        token: &ChallengeToken,
        assertion_json: &str,
    ) -> Result<Verified, Error> {
        let assertion = Assertion::parse(assertion_json)?;
        self.verify_login_key(token, &assertion).await
    }

    pub(crate) async fn verify_login_key(
        &self,
        token: &ChallengeToken,
        assertion: &Assertion,
    ) -> Result<Verified, Error> {
        let now = self.now();
        let max = self.inner.policy.challenge_max_attempts;
        let (at, _, attempt, challenge) = self.open_challenge(token, now).await?;
        let user = challenge.user.as_str();
        let checked = match &challenge.security_key {
            Some(state) if challenge.methods.contains(&Method::SecurityKey) => {
                self.assertion_passes(user, assertion, state, None, now)
                    .await
            }
            _ => Ok(false),
        };
        match checked {
            Ok(true) => {}
            outcome => {
                self.fail_attempt(user, &at.keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                });
            }
        }
        self.pass_attempt(
            user,
            &at.keys,
            &attempt,
            (Some(&at.challenge), None),
            Error::InvalidChallenge,
            now,
        )
        .await?;
        self.event(Event::Verified {
            user: user.to_owned(),
            method: Method::SecurityKey,
        });
        if challenge.recovery_pending {
            self.cancel_recovery(user).await?;
        }
        Ok(Verified {
            user: user.to_owned(),
            method: Some(Method::SecurityKey),
            backup_codes_remaining: challenge.backup_codes_remaining,
            verified_at: now,
        })
    }

    /// Reports a clone signal on the key `key`.
    pub(crate) fn clone_suspected(&self, user: &str, key: String) {
        self.event(Event::SecurityKeyCloneSuspected {
            user: user.to_owned(),
            key,
        });
    }

    /// Reports a clone signal raised by the ceremony's own counter check, naming the user's key
    /// with credential id `cred_id` (or none, when it is not one of theirs any more).
    pub(crate) async fn clone_signalled(&self, user: &str, cred_id: &[u8]) {
        let key = match self.load(user).await {
            Ok((rec, _)) => rec.security_keys.iter().find_map(|k| {
                credential(k)
                    .ok()
                    .filter(|c| c.cred_id().as_slice() == cred_id)
                    .map(|_| k.id.clone())
            }),
            Err(_) => None,
        };
        self.clone_suspected(user, key.unwrap_or_default());
    }
}

/// What [`TwoFactorService::record_assertion`] found.
pub(crate) enum KeyUse {
    /// Saved: the check passes.
    Recorded,
    /// The key's last check answered this ceremony already: nothing saved; the check passes only
    /// if the challenge is still there to take.
    Repeat,
    /// The key is not the user's (any more): the check fails.
    Missing,
    /// A clone signal on this key: the check fails.
    Cloned(String),
}

impl KeyUse {
    /// Whether the check may go on to take its challenge.
    pub(crate) fn passes(&self) -> bool {
        matches!(self, KeyUse::Recorded | KeyUse::Repeat)
    }
}

/// A short tag naming one ceremony: a hash of its state (which holds its random challenge).
fn ceremony_tag(state: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(state);
    URL_SAFE_NO_PAD.encode(digest.get(..12).unwrap_or_default())
}
