//! [`TwoFactorService`]: the struct, its shared parts and the small helpers every flow uses
//! (the clock, events, keys of short-lived records, input checks, record encoding).
//!
//! The flows live next to their concepts, each in an `impl TwoFactorService` block: the login in
//! `login`, the per-user lock in `lockout`, email codes in `email_code`, TOTP setup in
//! `totp::setup`, backup codes in `backup`, step-up actions and status in `step_up`. This module
//! adds the builder (`builder`) and the enrolment-record access (`records`).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::challenge::TAG_BYTES;
use crate::clock::{Clock, Timestamp};
use crate::email_code::CodePurpose;
use crate::error::Error;
use crate::events::{Event, EventSink};
use crate::flow::UserLimits;
use crate::keys::Keyring;
use crate::mail::{Mailer, Templates};
use crate::policy::Policy;
use crate::store::{EnrollmentStore, OtpStore, StoreKey};
use crate::text::{TextSender, TextTemplates};

mod builder;
mod records;

pub use builder::{PasswordVerifier, ServiceBuilder};
pub(crate) use records::algorithm;

type DisplayNames = dyn Fn(&str) -> Option<String> + Send + Sync;

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) keys: Keyring,
    pub(crate) otp: Arc<dyn OtpStore>,
    pub(crate) enrollments: Arc<dyn EnrollmentStore>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) templates: Arc<dyn Templates>,
    pub(crate) texts: Option<Arc<dyn TextSender>>,
    pub(crate) text_templates: Arc<dyn TextTemplates>,
    pub(crate) policy: Policy,
    clock: Arc<dyn Clock>,
    pub(crate) password: Option<Arc<dyn PasswordVerifier>>,
    pub(crate) display_names: Option<Arc<DisplayNames>>,
    events: Arc<dyn EventSink>,
    /// The WebAuthn relying party, when [`Policy::security_keys`] is set.
    #[cfg(feature = "webauthn")]
    pub(crate) webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

/// Two-factor authentication: enrolment, the second login step, disable, backup codes, status.
///
/// Cheap to clone (an `Arc` inside); share one instance across tasks.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use twofactor::*;
///
/// let mailer = RecordingMailer::new();
/// let tf = TwoFactorService::builder()
///     .issuer("Acme")
///     .keys(Keyring::generate())
///     .otp_store(MemoryOtpStore::new())
///     .enrollments(MemoryEnrollmentStore::new())
///     .mailer(mailer.clone())
///     .build()?;
///
/// // No factor yet: the login completes at once.
/// assert!(matches!(tf.begin_login("alice").await?, LoginStep::Complete(_)));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TwoFactorService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for TwoFactorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoFactorService")
            .field("issuer", &self.inner.issuer)
            .field("keys", &self.inner.keys)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

pub(crate) fn check_user(user: &str) -> Result<(), Error> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(Error::InvalidInput("user id must be 1 to 256 characters"));
    }
    Ok(())
}

pub(crate) fn check_address(address: &str) -> Result<(), Error> {
    let ok = address.len() <= 254
        && address.is_ascii()
        && !address
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        && !address.contains(['<', '>', '"', ',', ';'])
        && matches!(address.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput("not a valid email address"))
    }
}

/// Saturating `Duration` until `t` from `now`, at least one second for a live limit.
pub(crate) fn until(t: Timestamp, now: Timestamp) -> Duration {
    t.duration_since(now).max(Duration::from_secs(1))
}

impl TwoFactorService {
    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn event(&self, e: Event) {
        self.inner.events.record(&e);
    }

    /// Where the user's short-lived records live.
    pub(crate) fn user_keys(&self, user: &str) -> UserKeys {
        let mac = self.inner.keys.mac(&[b"user tag", user.as_bytes()]);
        let mut tag = [0u8; TAG_BYTES];
        if let Some(head) = mac.first_chunk::<TAG_BYTES>() {
            tag = *head;
        }
        UserKeys::from_tag(tag)
    }

    /// The per-user limits every code check counts against.
    pub(crate) fn limits(&self) -> UserLimits {
        let p = &self.inner.policy;
        UserLimits::new(
            p.lockout_threshold,
            p.failure_window,
            p.user_record_ttl.max(p.failure_window),
        )
    }
}

/// The keys of one user's short-lived records. All of them carry the user's key tag (a keyed
/// hash of the user id) as their `{…}` hash tag, so a Redis Cluster keeps them on one slot and
/// one script can reach them together:
///
/// | record | key |
/// | --- | --- |
/// | the user's record (failures, lock, last TOTP step, sends, last verification) | `tf:{tag}` |
/// | a login challenge | `tf:{tag}:c:<id>` |
/// | a pending code of a purpose | `tf:{tag}:p:<purpose>` |
/// | the password checks since the last correct one | `tf:{tag}:pw:run` |
/// | the send cooldown of either | the key above + `:s` |
pub(crate) struct UserKeys {
    pub(crate) tag: [u8; TAG_BYTES],
    user: StoreKey,
}

impl UserKeys {
    pub(crate) fn from_tag(tag: [u8; TAG_BYTES]) -> Self {
        let mut base = String::with_capacity(24);
        base.push_str("tf:{");
        URL_SAFE_NO_PAD.encode_string(tag, &mut base);
        base.push('}');
        UserKeys {
            tag,
            user: StoreKey::new(base),
        }
    }

    /// The user's record.
    pub(crate) fn user(&self) -> &StoreKey {
        &self.user
    }

    fn under(&self, kind: &str, name: &str) -> StoreKey {
        let base = self.user.as_str();
        let mut key = String::with_capacity(base.len() + kind.len() + name.len() + 2);
        key.push_str(base);
        key.push(':');
        key.push_str(kind);
        key.push(':');
        key.push_str(name);
        StoreKey::new(key)
    }

    /// A login challenge, by its id.
    pub(crate) fn challenge(&self, id: &[u8; 16]) -> StoreKey {
        let mut name = String::with_capacity(22);
        URL_SAFE_NO_PAD.encode_string(id, &mut name);
        self.under("c", &name)
    }

    /// The pending code of a purpose.
    pub(crate) fn pending(&self, purpose: CodePurpose) -> StoreKey {
        self.under("p", purpose.name())
    }

    /// The count of password checks since the last correct password.
    pub(crate) fn password_run(&self) -> StoreKey {
        self.under("pw", "run")
    }

    /// The send cooldown of a challenge or pending code.
    pub(crate) fn cooldown(of: &StoreKey) -> StoreKey {
        let of = of.as_str();
        let mut key = String::with_capacity(of.len() + 2);
        key.push_str(of);
        key.push_str(":s");
        StoreKey::new(key)
    }
}
