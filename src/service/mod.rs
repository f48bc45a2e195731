//! [`TwoFactorService`]: the struct, its shared parts and the small helpers every flow uses
//! (the clock, events, keys of short-lived records, input checks, record encoding).
//!
//! The flows live next to their concepts, each in an `impl TwoFactorService` block: the login in
//! `login`, the per-user lock in `lockout`, email codes in `email_code`, TOTP setup in
//! `totp::setup`, backup codes in `backup`, the SMS factor in `sms`, the status in `status`,
//! fresh-factor checks and disable in `step_up`. This module adds the builder (`builder`), the
//! per-concept handles (`handles`) and the enrolment-record access (`records`).
//!
//! ```
//! use twofactor::store::{MemoryEnrollmentStore, MemoryOtpStore};
//! use twofactor::{Keyring, TwoFactorService};
//!
//! let tf = TwoFactorService::builder()
//!     .issuer("Acme")
//!     .keys(Keyring::generate())
//!     .otp_store(MemoryOtpStore::new())
//!     .enrollments(MemoryEnrollmentStore::new())
//!     .mailer(twofactor::mail::LogMailer)
//!     .build()?;
//! // The login steps are on the service; the rest is grouped by concept.
//! let _totp = tf.totp();
//! let _account = tf.account();
//! # Ok::<(), twofactor::Error>(())
//! ```

use std::sync::Arc;

use crate::challenge::TAG_BYTES;
use crate::clock::{Clock, Timestamp};
use crate::events::{Event, EventSink};
use crate::keys::Keyring;
use crate::keyspace::UserKeys;
use crate::mail::{Mailer, Templates};
use crate::policy::Policy;
use crate::store::flow::UserLimits;
use crate::store::{EnrollmentStore, OtpStore};
use crate::text::{TextSender, TextTemplates};

mod builder;
mod handles;
mod records;

pub use builder::{PasswordVerifier, ServiceBuilder};
#[cfg(feature = "webauthn")]
pub use handles::SecurityKeys;
pub use handles::{Account, BackupCodes, Devices, Email, Recovery, Sms, Totp};
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
    pub(crate) notices: Option<Arc<dyn crate::mail::AccountNotices>>,
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
/// use twofactor::{*, clock::Clock, store::EnrollmentStore, events::Event, events::EventSink, mail::Mailer, store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, service::PasswordVerifier, testing::RecordingMailer, service::ServiceBuilder, mail::Templates, text::TextSender, text::TextTemplates, clock::Timestamp, store::flow};
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
/// assert!(matches!(tf.begin_login(&LoginContext::new(), "alice").await?, LoginStep::Complete(_)));
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
