//! Fault injection: an [`OtpStore`], an [`EnrollmentStore`] and a [`Mailer`] that wrap the memory
//! stores and a recording mailer, and fail at a chosen call.
//!
//! All three share one [`Faults`] counter, so "call number k" counts every store and mailer call
//! of a flow in order. A failure can happen before the wrapped call (nothing was done) or after it
//! (the change was made but the answer was lost, as with a timeout), once or from call k on.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use twofactor::store::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement, UserLimits,
    UserState,
};
use twofactor::{
    clock::Timestamp, error::DeliveryError, error::StoreError, mail::Mailer, mail::Message,
    store::BackupCodeRecord, store::EnrollmentRecord, store::EnrollmentStore,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, store::Revision,
    store::StoreKey, testing::RecordingMailer, testing::RecordingTextSender, text::TextMessage,
    text::TextSender, Policy,
};

use super::Harness;

/// When the injected failure strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No failure.
    Off,
    /// Call `at` fails (1-based); `after` makes the wrapped call first, then reports failure.
    Once { at: u64, after: bool },
    /// Every call from `at` on fails, before doing anything (an outage).
    From { at: u64 },
}

#[derive(Debug)]
struct State {
    mode: Mode,
    transient: bool,
    calls: u64,
    trace: Vec<&'static str>,
    injected: Vec<(u64, &'static str)>,
}

/// The shared call counter and failure plan.
#[derive(Debug)]
pub(crate) struct Faults {
    state: Mutex<State>,
}

/// What the wrapper must do with one call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    FailBefore,
    FailAfter,
}

impl Faults {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Faults {
            state: Mutex::new(State {
                mode: Mode::Off,
                transient: true,
                calls: 0,
                trace: Vec::new(),
                injected: Vec::new(),
            }),
        })
    }

    /// Starts counting calls from zero under `mode`; injected errors say `transient`.
    pub(crate) fn arm(&self, mode: Mode, transient: bool) {
        let mut s = self.state.lock().unwrap();
        s.mode = mode;
        s.transient = transient;
        s.calls = 0;
        s.trace.clear();
        s.injected.clear();
    }

    /// Stops injecting (the counter keeps counting).
    pub(crate) fn disarm(&self) {
        self.state.lock().unwrap().mode = Mode::Off;
    }

    /// Calls counted since the last `arm`.
    pub(crate) fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }

    /// The names of the calls since the last `arm`, in order.
    pub(crate) fn trace(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().trace.clone()
    }

    /// The calls that were made to fail since the last `arm`: (number, name).
    pub(crate) fn injected(&self) -> Vec<(u64, &'static str)> {
        self.state.lock().unwrap().injected.clone()
    }

    pub(crate) fn transient(&self) -> bool {
        self.state.lock().unwrap().transient
    }

    fn verdict(&self, name: &'static str) -> Verdict {
        let mut s = self.state.lock().unwrap();
        s.calls += 1;
        let n = s.calls;
        s.trace.push(name);
        let v = match s.mode {
            Mode::Off => Verdict::Pass,
            Mode::Once { at, after } if at == n => {
                if after {
                    Verdict::FailAfter
                } else {
                    Verdict::FailBefore
                }
            }
            Mode::Once { .. } => Verdict::Pass,
            Mode::From { at } if n >= at => Verdict::FailBefore,
            Mode::From { .. } => Verdict::Pass,
        };
        if v != Verdict::Pass {
            s.injected.push((n, name));
        }
        v
    }

    fn store_error(&self, name: &'static str) -> StoreError {
        let msg = format!("injected failure of {name}");
        if self.transient() {
            StoreError::unavailable(msg)
        } else {
            StoreError::corrupt(msg)
        }
    }

    fn delivery_error(&self) -> DeliveryError {
        if self.transient() {
            DeliveryError::transient("injected failure of send")
        } else {
            DeliveryError::permanent("injected failure of send")
        }
    }
}

/// Runs one wrapped store call under the plan.
macro_rules! faulty {
    ($self:ident, $name:literal, $call:expr) => {{
        match $self.faults.verdict($name) {
            Verdict::Pass => $call.await,
            Verdict::FailBefore => Err($self.faults.store_error($name)),
            Verdict::FailAfter => {
                let _ = $call.await;
                Err($self.faults.store_error($name))
            }
        }
    }};
}

/// An [`OtpStore`] that fails as planned.
pub(crate) struct FaultyOtpStore {
    pub(crate) inner: Arc<MemoryOtpStore>,
    pub(crate) faults: Arc<Faults>,
}

#[async_trait]
impl OtpStore for FaultyOtpStore {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        faulty!(self, "otp.put", self.inner.put(key, value, expires_at, now))
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        faulty!(
            self,
            "otp.put_if_absent",
            self.inner.put_if_absent(key, value, expires_at, now)
        )
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        faulty!(self, "otp.get", self.inner.get(key, now))
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        faulty!(self, "otp.take", self.inner.take(key, now))
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        faulty!(self, "otp.delete", self.inner.delete(key))
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        faulty!(
            self,
            "otp.increment",
            self.inner.increment(key, expires_at, now)
        )
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        faulty!(
            self,
            "otp.advance",
            self.inner.advance(key, value, expires_at, now)
        )
    }

    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        faulty!(
            self,
            "otp.begin_challenge",
            self.inner.begin_challenge(new, now)
        )
    }

    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        faulty!(
            self,
            "otp.reserve_send",
            self.inner.reserve_send(user, challenge, spec, now)
        )
    }

    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        faulty!(
            self,
            "otp.store_code",
            self.inner.store_code(key, create, code, now)
        )
    }

    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        faulty!(self, "otp.open_attempt", self.inner.open_attempt(spec, now))
    }

    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        faulty!(self, "otp.settle", self.inner.settle(settlement, now))
    }

    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        faulty!(
            self,
            "otp.user_state",
            self.inner.user_state(user, limits, now)
        )
    }

    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        faulty!(
            self,
            "otp.end_challenges",
            self.inner.end_challenges(user, limits, now)
        )
    }
}

/// An [`EnrollmentStore`] that fails as planned.
pub(crate) struct FaultyEnrollmentStore {
    pub(crate) inner: Arc<MemoryEnrollmentStore>,
    pub(crate) faults: Arc<Faults>,
}

#[async_trait]
impl EnrollmentStore for FaultyEnrollmentStore {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        faulty!(self, "enrol.load", self.inner.load(user))
    }

    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        faulty!(self, "enrol.save", self.inner.save(user, record, expected))
    }

    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        faulty!(self, "enrol.remove", self.inner.remove(user))
    }

    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        faulty!(
            self,
            "enrol.replace_backup_codes",
            self.inner.replace_backup_codes(user, codes, now)
        )
    }

    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        faulty!(
            self,
            "enrol.find_backup_code",
            self.inner.find_backup_code(user, lookup)
        )
    }

    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        faulty!(
            self,
            "enrol.consume_backup_code",
            self.inner.consume_backup_code(user, lookup, now)
        )
    }

    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        faulty!(
            self,
            "enrol.backup_codes_remaining",
            self.inner.backup_codes_remaining(user)
        )
    }

    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        faulty!(
            self,
            "enrol.load_with_codes",
            self.inner.load_with_codes(user)
        )
    }

    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        faulty!(
            self,
            "enrol.redeem_backup_code",
            self.inner.redeem_backup_code(user, lookup, now)
        )
    }
}

/// A [`Mailer`] that fails as planned; what it delivers is recorded by the inner mailer.
pub(crate) struct FaultyMailer {
    pub(crate) inner: RecordingMailer,
    pub(crate) faults: Arc<Faults>,
}

#[async_trait]
impl Mailer for FaultyMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        match self.faults.verdict("mail.send") {
            Verdict::Pass => self.inner.send(message).await,
            Verdict::FailBefore => Err(self.faults.delivery_error()),
            Verdict::FailAfter => {
                let _ = self.inner.send(message).await;
                Err(self.faults.delivery_error())
            }
        }
    }
}

pub(crate) struct FaultyTextSender {
    pub(crate) inner: RecordingTextSender,
    pub(crate) faults: Arc<Faults>,
}

#[async_trait]
impl TextSender for FaultyTextSender {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        match self.faults.verdict("text.send") {
            Verdict::Pass => self.inner.send(text).await,
            Verdict::FailBefore => Err(self.faults.delivery_error()),
            Verdict::FailAfter => {
                let _ = self.inner.send(text).await;
                Err(self.faults.delivery_error())
            }
        }
    }
}

/// A [`Harness`] whose service runs on the faulty wrappers (its `otp`, `enrollments`,
/// `mailer` and `texts` are the healthy stores and doubles underneath), and the shared fault
/// plan.
pub(crate) fn harness(policy: Policy) -> (Harness, Arc<Faults>) {
    let faults = Faults::new();
    let plan = faults.clone();
    let h = Harness::builder()
        .policy(policy)
        .service(move |b, w| {
            b.otp_store(FaultyOtpStore {
                inner: w.otp.clone(),
                faults: plan.clone(),
            })
            .enrollments(FaultyEnrollmentStore {
                inner: w.enrollments.clone(),
                faults: plan.clone(),
            })
            .mailer(FaultyMailer {
                inner: w.doubles.mailer.clone(),
                faults: plan.clone(),
            })
            .text_sender(FaultyTextSender {
                inner: w.doubles.texts.clone(),
                faults: plan,
            })
        })
        .build();
    (h, faults)
}
