//! Test doubles for hosts' own tests: a mailer, a text sender and an event sink that record what
//! they are given, and a clock that moves only when told to. The store conformance suite, to
//! prove a store of your own right, is `store::conformance` (feature `test-util`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use twofactor::clock::Timestamp;
//! use twofactor::store::{MemoryEnrollmentStore, MemoryOtpStore};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! use twofactor::{Keyring, LoginContext, LoginStep, TwoFactorService};
//!
//! let mailer = RecordingMailer::new();
//! let clock = ManualClock::new(Timestamp::from_unix_secs(1_700_000_000));
//! let tf = TwoFactorService::builder()
//!     .issuer("Acme")
//!     .keys(Keyring::generate())
//!     .otp_store(MemoryOtpStore::new())
//!     .enrollments(MemoryEnrollmentStore::new())
//!     .mailer(mailer.clone())
//!     .clock(clock.clone())
//!     .build()?;
//! tf.email().start_setup("alice", "alice@example.com").await?;
//! assert_eq!(mailer.messages().len(), 1);
//! clock.advance(Duration::from_secs(60));
//! # Ok::<(), twofactor::Error>(())
//! # }).unwrap();
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, Timestamp};
use crate::error::DeliveryError;
use crate::events::{Event, EventSink};
use crate::mail::{AccountNotice, AccountNotices, Mailer, Message};
use crate::text::{TextMessage, TextSender};

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use twofactor::{clock::Clock, testing::ManualClock, clock::Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_unix_secs(1_000));
/// clock.advance(Duration::from_secs(299));
/// assert_eq!(clock.now().as_unix_secs(), 1_299);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start.as_unix_secs())),
        }
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let secs = d.as_secs();
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.now.store(t.as_unix_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_secs(self.now.load(Ordering::SeqCst))
    }
}

/// Keeps every message in memory, for tests: the equivalent of a stub transport.
///
/// ```
/// use twofactor::testing::RecordingMailer;
/// let mailer = RecordingMailer::new();
/// assert!(mailer.messages().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RecordingMailer {
    sent: Arc<Mutex<Vec<Message>>>,
}

impl RecordingMailer {
    /// An empty recorder. Clones share the same list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The most recent message to `to`, if any.
    pub fn last_to(&self, to: &str) -> Option<Message> {
        self.messages().into_iter().rev().find(|m| m.to == to)
    }

    /// Forgets every recorded message.
    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.clone());
        Ok(())
    }
}

/// Keeps every text in memory, for tests. Clones share the same list.
///
/// ```
/// use twofactor::testing::RecordingTextSender;
/// assert!(RecordingTextSender::new().texts().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RecordingTextSender {
    sent: Arc<Mutex<Vec<TextMessage>>>,
}

impl RecordingTextSender {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every text sent so far, oldest first.
    pub fn texts(&self) -> Vec<TextMessage> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The most recent text to `to` (E.164), if any.
    pub fn last_to(&self, to: &str) -> Option<TextMessage> {
        self.texts()
            .into_iter()
            .rev()
            .find(|m| m.to.as_e164() == to)
    }

    /// Forgets every recorded text.
    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[async_trait]
impl TextSender for RecordingTextSender {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text.clone());
        Ok(())
    }
}

/// Keeps every [`AccountNotice`] the service sends to an account's own contact, for tests.
/// Clones share the same list.
///
/// ```
/// use twofactor::testing::RecordingNotices;
/// assert!(RecordingNotices::new().notices().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RecordingNotices {
    sent: Arc<Mutex<Vec<(String, AccountNotice)>>>,
}

impl RecordingNotices {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every notice sent so far with its user, oldest first.
    pub fn notices(&self) -> Vec<(String, AccountNotice)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl AccountNotices for RecordingNotices {
    async fn send(&self, user: &str, notice: &AccountNotice) -> Result<(), DeliveryError> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((user.to_owned(), *notice));
        Ok(())
    }
}

/// Keeps every event in memory, for tests. Clones share the same list.
#[derive(Clone, Debug, Default)]
pub struct RecordingEvents {
    events: Arc<Mutex<Vec<Event>>>,
}

impl RecordingEvents {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets every recorded event.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl EventSink for RecordingEvents {
    fn record(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }
}
