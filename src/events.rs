//! Security events: what happened, for audit logs and alerting (ASVS 2.5.5, 2.8.5).
//!
//! The service reports every success, failure, lockout, replay, enrolment change and backup-code
//! use to an [`EventSink`]. The default, [`TracingEvents`], writes them to the `tracing` log;
//! [`RecordingEvents`](crate::testing::RecordingEvents) keeps them for tests. Events never carry a code or a secret.
//!
//! A sink is one method; a host sends events to its audit log or its alerting:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use twofactor::events::{Event, EventSink};
//!
//! /// Counts lockouts, for an alert.
//! #[derive(Clone, Default)]
//! struct Lockouts(Arc<Mutex<Vec<String>>>);
//!
//! impl EventSink for Lockouts {
//!     fn record(&self, event: &Event) {
//!         if let Event::LockedOut { user, .. } = event {
//!             self.0.lock().unwrap().push(user.clone());
//!         }
//!     }
//! }
//!
//! let sink = Lockouts::default();
//! sink.record(&Event::CodeRejected { user: "alice".into() });
//! assert!(sink.0.lock().unwrap().is_empty());
//! // The service takes it with `TwoFactorService::builder().events(sink)`.
//! ```

use crate::clock::Timestamp;
use crate::method::Method;

/// One security event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A second-factor check passed.
    Verified {
        /// The user.
        user: String,
        /// How.
        method: Method,
    },
    /// A submitted code was wrong, expired or malformed.
    CodeRejected {
        /// The user.
        user: String,
    },
    /// Too many consecutive failures: the user's code step is locked.
    LockedOut {
        /// The user.
        user: String,
        /// When the lock lifts.
        until: Timestamp,
    },
    /// A TOTP code was right but its step had been used before.
    ReplayRejected {
        /// The user.
        user: String,
    },
    /// A factor was enabled.
    FactorEnabled {
        /// The user.
        user: String,
        /// Which factor.
        method: Method,
    },
    /// Two-factor authentication was disabled.
    FactorDisabled {
        /// The user.
        user: String,
    },
    /// A backup code was used.
    BackupCodeUsed {
        /// The user.
        user: String,
        /// Codes left.
        remaining: u32,
    },
    /// A new backup-code set replaced the old one.
    BackupCodesRegenerated {
        /// The user.
        user: String,
    },
    /// A user confirmed a fresh second factor for a security change.
    Reauthenticated {
        /// The user.
        user: String,
        /// How.
        method: Method,
    },
    /// A user started adding a factor (its setup awaits confirmation).
    FactorSetupStarted {
        /// The user.
        user: String,
        /// The factor being added.
        method: Method,
    },
    /// A TOTP setup asked for another algorithm or digits, the app's code was SHA-1 with 6
    /// digits, and the policy allowed enrolling that instead
    /// ([`Policy::totp_allow_sha1_fallback`](crate::Policy::totp_allow_sha1_fallback)).
    TotpSha1Fallback {
        /// The user.
        user: String,
        /// The algorithm the policy asked for.
        requested: crate::totp::TotpAlgorithm,
        /// The digits the policy asked for.
        digits: u32,
    },
    /// A device was trusted ([`devices().trust`](crate::service::Devices::trust)).
    DeviceTrusted {
        /// The user.
        user: String,
        /// The device's public id.
        device: String,
    },
    /// A device token was given at login and refused (another user's, expired, revoked or
    /// malformed): the login went on with a challenge.
    DeviceRejected {
        /// The user.
        user: String,
    },
    /// Trusted devices were revoked (one, or all of them).
    DevicesRevoked {
        /// The user.
        user: String,
        /// How many.
        count: u32,
    },
    /// An account recovery was asked for: two-factor authentication is turned off at
    /// `effective_at` unless a second-factor check or a cancellation comes first. Tell the
    /// account's own address, and run
    /// [`recovery().process`](crate::service::Recovery::process) for this user until then.
    RecoveryRequested {
        /// The user.
        user: String,
        /// When it takes effect.
        effective_at: Timestamp,
    },
    /// A pending account recovery was cancelled (by the host, or by a passed check).
    RecoveryCancelled {
        /// The user.
        user: String,
    },
    /// A pending account recovery took effect: every factor was removed.
    RecoveryCompleted {
        /// The user.
        user: String,
    },
    /// A code was mailed.
    CodeSent {
        /// The user.
        user: String,
    },
    /// A security key was removed (the factor itself; see also [`Event::FactorDisabled`] when
    /// it was the last factor).
    SecurityKeyRemoved {
        /// The user.
        user: String,
        /// The key's public id.
        key: String,
    },
    /// A security key's assertion carried a signature counter at or below the highest one
    /// seen for that key: the authenticator may have been cloned. The assertion was refused.
    /// Investigate, and consider removing the key.
    SecurityKeyCloneSuspected {
        /// The user.
        user: String,
        /// The key's public id.
        key: String,
    },
}

/// Receives security events. Implementations must be quick and must not fail the flow.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> EventSink for F {
    fn record(&self, event: &Event) {
        self(event)
    }
}

/// Writes events to the `tracing` log (target `twofactor::events`): failures and lockouts at WARN,
/// the rest at INFO.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn record(&self, event: &Event) {
        match event {
            Event::CodeRejected { .. }
            | Event::LockedOut { .. }
            | Event::ReplayRejected { .. }
            | Event::SecurityKeyCloneSuspected { .. } => {
                tracing::warn!(target: "twofactor::events", ?event, "two-factor event")
            }
            _ => tracing::info!(target: "twofactor::events", ?event, "two-factor event"),
        }
    }
}
