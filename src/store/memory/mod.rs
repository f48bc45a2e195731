//! In-memory stores: the embedded default for a single process, and the reference for the
//! conformance suite.
//!
//! [`MemoryOtpStore`] keeps its records in one map behind a lock (`state`: the map, and the
//! sweep that garbage-collects expired records; `entry`: a record, and the encoding of a
//! challenge's); [`MemoryEnrollmentStore`] keeps enrolments and backup codes in two maps.

use std::sync::{Mutex, MutexGuard};

mod enrollment;
mod entry;
mod otp;
mod state;
#[cfg(test)]
mod tests;

pub use enrollment::MemoryEnrollmentStore;
#[cfg(feature = "fuzzing")]
pub(crate) use entry::{challenge_entry_bytes, read_challenge_entry};
pub use otp::MemoryOtpStore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a map half-updated (every update is a whole
    // insert, remove or shrink), so a poisoned lock is safe to use.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
