//! Security keys and passkeys (WebAuthn) as a second factor, through the `webauthn-rs` crate
//! (feature `webauthn`): registration, the login answer, step-up, listing, renaming, removal.
//!
//! A key answers the same challenge as the codes do: [`begin_login`] offers
//! [`Method::SecurityKey`] with the request options for `navigator.credentials.get`, and the
//! browser's assertion goes to [`verify_login`]. It is counted
//! against the challenge's and the user's limits before it is checked, and a pass consumes the
//! challenge, exactly as a code's does.
//!
//! Why the ceremony state may live in the store: see [`SecurityKeyPolicy`].
//!
//! [`begin_login`]: TwoFactorService::begin_login
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use twofactor::security_key::SecurityKeyPolicy;
//! use twofactor::store::{MemoryEnrollmentStore, MemoryOtpStore};
//! use twofactor::{Keyring, Policy, TwoFactorService};
//!
//! let mut policy = Policy::default();
//! let mut keys = SecurityKeyPolicy::new("example.com", "https://example.com");
//! keys.allow_key_alone = true; // a key may be the account's only factor
//! policy.security_keys = Some(keys);
//! let tf = TwoFactorService::builder()
//!     .issuer("Acme")
//!     .keys(Keyring::generate())
//!     .otp_store(MemoryOtpStore::new())
//!     .enrollments(MemoryEnrollmentStore::new())
//!     .mailer(twofactor::testing::RecordingMailer::new())
//!     .policy(policy)
//!     .build()?;
//! // The options for `navigator.credentials.create`, as JSON for the page.
//! let options = tf.security_keys().start_registration("alice", "Alice").await?;
//! assert!(options.as_json()["publicKey"]["challenge"].is_string());
//! assert_eq!(options.as_json()["publicKey"]["rp"]["id"], "example.com");
//! # Ok::<(), twofactor::Error>(())
//! # }).unwrap();
//! ```
//!
//! [`begin_login`]: TwoFactorService::begin_login
//! [`verify_login`]: TwoFactorService::verify_login

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::Serialize;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyRegistration, Uuid,
    Webauthn, WebauthnError,
};

use crate::error::{Error, StoreError};
use crate::events::Event;
use crate::input::check_user;
use crate::keyspace::CodePurpose;
use crate::mail::MailContent;
use crate::method::Method;
use crate::service::TwoFactorService;
use crate::store::{EnrollmentRecord, SecurityKeyRecord};

mod assertion;
pub(crate) mod types;

pub use types::{
    SecurityKeyInfo, SecurityKeyOptions, SecurityKeyPolicy, UserVerification,
    MAX_SECURITY_KEY_LABEL, MAX_SECURITY_KEY_RESPONSE,
};

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

    /// [`SecurityKeys::start_registration`](crate::service::SecurityKeys::start_registration).
    pub(crate) async fn start_security_key_registration(
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
                    SecurityKeyOptions::encode(&o)?,
                    tagged(FLOW_SECURITY_KEY, &s)?,
                )
            }
            UserVerification::Required => {
                let (o, s): (CreationChallengeResponse, PasskeyRegistration) = rp
                    .start_passkey_registration(handle, &name, &name, Some(exclude))
                    .map_err(refused)?;
                (SecurityKeyOptions::encode(&o)?, tagged(FLOW_PASSKEY, &s)?)
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

    /// [`SecurityKeys::finish_registration`](crate::service::SecurityKeys::finish_registration).
    pub(crate) async fn finish_security_key_registration(
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
        let ended = self.end_challenges(user).await;
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
        ended.map(|()| info)
    }

    /// [`SecurityKeys::list`](crate::service::SecurityKeys::list).
    pub(crate) async fn list_security_keys(
        &self,
        user: &str,
    ) -> Result<Vec<SecurityKeyInfo>, Error> {
        check_user(user)?;
        let (rec, _) = self.load(user).await?;
        Ok(rec
            .security_keys
            .iter()
            .map(SecurityKeyInfo::from)
            .collect())
    }

    /// [`SecurityKeys::rename`](crate::service::SecurityKeys::rename).
    pub(crate) async fn rename_security_key(
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

    /// [`SecurityKeys::remove`](crate::service::SecurityKeys::remove).
    pub(crate) async fn remove_security_key(
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
        // A step-up code sent to turn two-factor authentication off also confirms removing one
        // key, which may turn it off (the last factor) and otherwise does less.
        let action = crate::mail::SecurityAction::DisableTwoFactor;
        self.confirm_with_password(user, (&rec, rev), password, code, action)
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
        let ended = self.end_challenges(user).await;
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
        ended
    }

    /// [`SecurityKeys::start_step_up`](crate::service::SecurityKeys::start_step_up).
    pub(crate) async fn start_security_key_step_up(
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
}
