//! [`TwoFactorService`]: the struct, its shared parts and the small helpers every flow uses
//! (the clock, events, keys of short-lived records, input checks, record encoding).
//!
//! The flows live next to their concepts, each in an `impl TwoFactorService` block: the login in
//! `login`, the per-user lock in `lockout`, email codes in `email_code`, TOTP setup in
//! `totp::setup`, backup codes in `backup`, step-up actions and status in `step_up`. This module
//! adds the builder (`builder`) and the enrolment-record access (`records`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Timestamp};
use crate::error::{Error, StoreError};
use crate::events::{Event, EventSink};
use crate::keys::{hex, Keyring};
use crate::mail::{Mailer, Templates};
use crate::policy::Policy;
use crate::store::{EnrollmentStore, OtpStore, StoreKey};

mod builder;
mod records;

pub use builder::{PasswordVerifier, ServiceBuilder};

type DisplayNames = dyn Fn(&str) -> Option<String> + Send + Sync;

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) keys: Keyring,
    pub(crate) otp: Arc<dyn OtpStore>,
    pub(crate) enrollments: Arc<dyn EnrollmentStore>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) templates: Arc<dyn Templates>,
    pub(crate) policy: Policy,
    clock: Arc<dyn Clock>,
    pub(crate) password: Option<Arc<dyn PasswordVerifier>>,
    pub(crate) display_names: Option<Arc<DisplayNames>>,
    events: Arc<dyn EventSink>,
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

/// The key of a user's short-lived record `what`, under the user's hash tag.
pub(crate) fn tag_key(tag: &str, what: &str) -> StoreKey {
    StoreKey::new(format!("tf:u:{{{tag}}}:{what}"))
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Store(StoreError::corrupt(e)))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Store(StoreError::corrupt(e)))
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

    pub(crate) fn user_tag(&self, user: &str) -> String {
        let mac = self.inner.keys.mac(&[b"user tag", user.as_bytes()]);
        hex(mac.get(..12).unwrap_or(&mac))
    }

    pub(crate) fn ukey(&self, user: &str, what: &str) -> StoreKey {
        tag_key(&self.user_tag(user), what)
    }

    pub(crate) fn ckey(id: &str, what: &str) -> StoreKey {
        StoreKey::new(format!("tf:c:{{{id}}}:{what}"))
    }
}
