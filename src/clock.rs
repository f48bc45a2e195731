//! Time as a value: the [`Clock`] trait, the system clock and a manual clock for tests.
//!
//! Every decision about expiry in `twofactor` is made from a [`Timestamp`] handed out by a
//! [`Clock`]. Stores never read the wall clock: the service passes `now` in. That keeps the logic
//! testable (move a [`ManualClock`](crate::testing::ManualClock) instead of sleeping) and keeps every backend in agreement.
//!
//! ```
//! use std::time::Duration;
//! use twofactor::clock::{Clock, SystemClock, Timestamp};
//!
//! let issued = Timestamp::from_unix_secs(1_700_000_000);
//! let expires = issued.saturating_add(Duration::from_secs(600));
//! assert_eq!(expires.duration_since(issued), Duration::from_secs(600));
//! // Never negative: an earlier time less a later one is zero.
//! assert_eq!(issued.duration_since(expires), Duration::ZERO);
//! assert!(SystemClock.now() > issued);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: whole seconds since the Unix epoch, as a `u64`.
///
/// A `u64` of seconds has no 2038 problem (RFC 6238 §4.2) and arithmetic on it saturates, so no
/// configuration value or clock reading can make it panic.
///
/// ```
/// use std::time::Duration;
/// use twofactor::clock::Timestamp;
///
/// let t = Timestamp::from_unix_secs(20_000_000_000);
/// assert_eq!(t.saturating_add(Duration::from_secs(30)).as_unix_secs(), 20_000_000_030);
/// assert_eq!(Timestamp::MAX.saturating_add(Duration::from_secs(1)), Timestamp::MAX);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// The largest representable time.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `secs` seconds after the Unix epoch.
    pub const fn from_unix_secs(secs: u64) -> Self {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn as_unix_secs(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_secs()))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(d.as_secs()))
    }

    /// How long from `earlier` to `self`; zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0))
    }
}

/// The source of the current time.
///
/// Implement it to drive time yourself; [`SystemClock`] reads the operating system's clock and
/// [`ManualClock`](crate::testing::ManualClock) is moved by hand in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(secs)
    }
}

/// Saturating `Duration` until `t` from `now`, at least one second for a live limit.
pub(crate) fn until(t: Timestamp, now: Timestamp) -> std::time::Duration {
    t.duration_since(now).max(std::time::Duration::from_secs(1))
}
