//! The store conformance suite (feature `test-util`): prove an [`OtpStore`] or
//! [`EnrollmentStore`] right with the same tests every store of this crate passes.
//!
//! Each primitive and each invariant has one generic async test body here, in [`otp`] and
//! [`enrollment`]. The macros [`otp_store_tests!`](crate::otp_store_tests) and
//! [`enrollment_store_tests!`](crate::enrollment_store_tests) turn them into `#[test]` functions
//! for your store; each runs on its own multi-threaded tokio runtime, so your test crate needs no
//! tokio of its own.
//!
//! ```no_run
//! // tests/my_store.rs
//! use twofactor::{store::MemoryEnrollmentStore, store::MemoryOtpStore};
//!
//! // The constructor is called once per test and returns `Option<Store>`: `None` skips the
//! // test (for example when the server's URL is not set); standard error says so, past the
//! // test harness's output capture.
//! mod otp {
//!     twofactor::otp_store_tests!(|| async { Some(twofactor::store::MemoryOtpStore::new()) }, purge);
//! }
//! mod enrollment {
//!     twofactor::enrollment_store_tests!(|| async { Some(twofactor::store::MemoryEnrollmentStore::new()) });
//! }
//! # fn main() {}
//! ```
//!
//! The bodies use keys and user ids with a random part, so they can run in parallel against one
//! shared database. Add `purge` when your store implements [`Purge`].
//!
//! What is checked, for the [`OtpStore`]: round trip of arbitrary bytes; `put` replaces value and
//! expiry; put-if-absent collision, also under 64 concurrent calls; expiry decided only by the
//! `now` passed in (times long past and after 2038 alike); `take` single use, also under 64
//! concurrent calls; `delete`; counters that keep their expiry and restart after it, and 64
//! concurrent increments that return exactly 1..=64; advance-if-greater, alone and racing;
//! isolation of keys that differ by one character, share a prefix or a hash tag; purge removes
//! only expired records; a [`RateLimiter`](crate::rate_limit::RateLimiter) over the store (fixed and sliding
//! windows, exactly `max` of 64 concurrent hits allowed, hostile keys hashed and apart, the
//! per-client ceiling of the login steps). For the [`EnrollmentStore`]: round trip; compare-and-swap that refuses
//! stale revisions, also under 32 concurrent writers and across a removal; removal of the record
//! with its backup codes; backup codes found, consumed once (also under 32 concurrent attempts),
//! counted, voided by replacement and kept per user; `load_with_codes` with the count of unused
//! codes, and `redeem_backup_code` once, also under 32 concurrent attempts; the parts that ride
//! in the record (trusted devices, a pending recovery, the phone, security keys) load back equal
//! and are not undone by a stale writer.

// This module is test code shipped for hosts: failing loudly is its job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::StoreError;
#[allow(unused_imports)] // named in the docs
use crate::store::{EnrollmentStore, OtpStore};
use crate::store::{MemoryOtpStore, StoreKey};

pub mod enrollment;
pub mod epoch;
pub mod flow;
pub mod otp;
pub mod rate_limit;

/// A store that can delete its expired records on demand (the SQL stores, the memory store).
///
/// Implement it to run the `purge` test of [`otp_store_tests!`](crate::otp_store_tests).
#[async_trait]
pub trait Purge: Send + Sync + 'static {
    /// Deletes every record that has expired by `now`; returns how many were deleted.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl Purge for MemoryOtpStore {
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        Ok(u64::try_from(MemoryOtpStore::purge_expired(self, now)).unwrap_or(u64::MAX))
    }
}

/// Runs one test body on a fresh multi-threaded runtime with a store from `make`; when `make`
/// gives `None`, the test is skipped: the process's standard error says so, written directly
/// so that the test harness's output capture does not hide it, once per process with a count
/// of the skipped tests at the first, the tenth, the hundredth, … skip
/// (`twofactor conformance: SKIPPED store tests: no store configured (1 test skipped so far,
/// latest: <name>)`).
///
/// Used by the macros; call it yourself to run a single body.
pub fn run<S, M, MF, T, TF>(name: &str, make: M, test: T)
where
    S: Send + Sync + 'static,
    M: FnOnce() -> MF,
    MF: Future<Output = Option<S>>,
    T: FnOnce(Arc<S>) -> TF,
    TF: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        match make().await {
            Some(store) => test(Arc::new(store)).await,
            None => crate::store::skips::report(
                "conformance: SKIPPED store tests: no store configured",
                name,
            ),
        }
    });
}

/// Generates one `#[test]` per [`OtpStore`](crate::store::OtpStore) conformance body.
///
/// `$make` is an expression giving a closure that returns a future of `Option<Store>`, called
/// once per test; `None` skips. Append `, purge` when the store implements
/// [`conformance::Purge`](crate::store::conformance::Purge). See [`conformance`](crate::store::conformance).
#[macro_export]
macro_rules! otp_store_tests {
    ($make:expr) => {
        $crate::__conformance_tests!(otp; $make;
            round_trip,
            binary_values,
            put_replaces_value_and_expiry,
            put_if_absent_collision,
            put_if_absent_after_expiry,
            put_if_absent_concurrent_exactly_one,
            expiry_follows_now_passed_in,
            take_is_single_use,
            take_concurrent_exactly_one,
            delete_removes_live_and_expired,
            increment_counts_and_keeps_expiry,
            increment_concurrent_counts_all,
            advance_only_forward,
            advance_concurrent_same_value_exactly_one,
            advance_concurrent_racing_values,
            key_isolation,
        );
        $crate::__conformance_tests!(rate_limit; $make;
            fixed_window_per_key,
            sliding_window_weighs_the_previous_window,
            concurrent_hits_allow_exactly_max,
            hostile_keys_are_hashed_and_apart,
            client_ceiling_across_accounts,
        );
        /// The composite operations, native.
        mod flow {
            #[allow(unused_imports)]
            use super::*;
            $crate::__flow_conformance_tests!($make);
        }
        /// The composite operations on the defaults built from the store's primitives.
        mod flow_defaults {
            #[allow(unused_imports)]
            use super::*;
            $crate::__flow_conformance_tests!(|| async {
                ($make)().await.map($crate::store::conformance::PrimitivesOnly)
            });
        }
    };
    ($make:expr, purge) => {
        $crate::otp_store_tests!($make);
        $crate::__conformance_tests!(otp; $make; purge_removes_only_expired);
    };
}

/// Generates one `#[test]` per [`EnrollmentStore`](crate::store::EnrollmentStore) conformance body.
///
/// `$make` is as for [`otp_store_tests!`](crate::otp_store_tests).
#[macro_export]
macro_rules! enrollment_store_tests {
    ($make:expr) => {
        $crate::__conformance_tests!(enrollment; $make;
            record_round_trip,
            unknown_user_is_empty,
            save_refuses_stale_revisions,
            save_concurrent_exactly_one,
            remove_clears_record_and_codes,
            stale_revision_refused_after_remove,
            backup_codes_round_trip,
            backup_code_consumed_once,
            backup_code_concurrent_consume_exactly_one,
            backup_codes_replacement_voids_old,
            backup_codes_kept_per_user,
            load_with_codes_and_redeem,
            redeem_concurrent_exactly_one,
            trusted_devices_round_trip,
            recovery_round_trip,
            phone_round_trip,
            security_keys_round_trip,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($group:ident; $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::store::conformance::run(
                    stringify!($name),
                    $make,
                    $crate::store::conformance::$group::$name,
                );
            }
        )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __flow_conformance_tests {
    ($make:expr) => {
        $crate::__conformance_tests!(flow; $make;
            begin_creates_once,
            begin_reserves_the_send,
            resend_keeps_limits_and_attempts,
            store_code_creates_only_when_asked,
            open_stops_at_the_challenge_cap,
            open_concurrent_respects_the_cap,
            threshold_and_lock_across_challenges,
            settle_passes_once_and_refuses_replays,
            settle_concurrent_exactly_one,
            runs_and_levels_lapse,
            failure_on_a_gone_challenge_is_not_charged,
        );
        $crate::__conformance_tests!(epoch; $make;
            end_challenges_ends_the_challenges_begun_before,
            a_lock_ends_the_challenges_begun_before,
            epochs_survive_in_the_user_record,
            earlier_default_records_read_as_epoch_0,
            a_lapsed_record_never_brings_a_challenge_back,
        );
    };
}

#[doc(inline)]
pub use crate::{enrollment_store_tests, otp_store_tests};

/// A text with a random part, so tests can share one store.
fn unique(what: &str) -> String {
    format!("{what}-{:016x}", rand::random::<u64>())
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

/// Runs `n` copies of `f` at once on the runtime's worker threads and collects their results.
async fn concurrently<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let fut = f(i);
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("a concurrent task panicked"));
    }
    out
}

/// Forwards only the primitives of an [`OtpStore`], so that its composite operations run on the
/// defaults built from them: the conformance suite checks both.
#[derive(Debug)]
pub struct PrimitivesOnly<S>(pub S);

#[async_trait]
impl<S: OtpStore> OtpStore for PrimitivesOnly<S> {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.0.put(key, value, expires_at, now).await
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.put_if_absent(key, value, expires_at, now).await
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key, now).await
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.take(key, now).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.0.delete(key).await
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.0.increment(key, expires_at, now).await
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.advance(key, value, expires_at, now).await
    }
}
