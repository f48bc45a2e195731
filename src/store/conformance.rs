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
//! use twofactor::{MemoryEnrollmentStore, MemoryOtpStore};
//!
//! // The constructor is called once per test and returns `Option<Store>`: `None` skips the
//! // test (for example when the server's URL is not set), after printing a line saying so.
//! mod otp {
//!     twofactor::otp_store_tests!(|| async { Some(twofactor::MemoryOtpStore::new()) }, purge);
//! }
//! mod enrollment {
//!     twofactor::enrollment_store_tests!(|| async { Some(twofactor::MemoryEnrollmentStore::new()) });
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
//! only expired records. For the [`EnrollmentStore`]: round trip; compare-and-swap that refuses
//! stale revisions, also under 32 concurrent writers and across a removal; removal of the record
//! with its backup codes; backup codes found, consumed once (also under 32 concurrent attempts),
//! counted, voided by replacement and kept per user.

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
/// gives `None`, prints `skipped: <name>` to stderr and returns.
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
            None => eprintln!("skipped: {name}: no store configured"),
        }
    });
}

/// Generates one `#[test]` per [`OtpStore`](crate::OtpStore) conformance body.
///
/// `$make` is an expression giving a closure that returns a future of `Option<Store>`, called
/// once per test; `None` skips. Append `, purge` when the store implements
/// [`conformance::Purge`](crate::conformance::Purge). See [`conformance`](crate::conformance).
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
                ($make)().await.map($crate::conformance::PrimitivesOnly)
            });
        }
    };
    ($make:expr, purge) => {
        $crate::otp_store_tests!($make);
        $crate::__conformance_tests!(otp; $make; purge_removes_only_expired);
    };
}

/// Generates one `#[test]` per [`EnrollmentStore`](crate::EnrollmentStore) conformance body.
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
                $crate::conformance::run(
                    stringify!($name),
                    $make,
                    $crate::conformance::$group::$name,
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
        );
    };
}

#[doc(inline)]
pub use crate::{enrollment_store_tests, otp_store_tests};

include!("flow_conformance.rs");

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

/// Conformance bodies for [`OtpStore`].
pub mod otp {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn key(name: &str) -> StoreKey {
        StoreKey::new(format!("{{{}}}:{name}", unique("cf")))
    }

    /// Put, get (twice), take, and nothing left.
    pub async fn round_trip<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("code");
        let now = at(T0);
        assert_eq!(
            store.get(&k, now).await.unwrap(),
            None,
            "fresh key is empty"
        );
        store.put(&k, b"value", at(T0 + 300), now).await.unwrap();
        assert_eq!(
            store.get(&k, now).await.unwrap().as_deref(),
            Some(&b"value"[..])
        );
        assert_eq!(
            store.get(&k, now).await.unwrap().as_deref(),
            Some(&b"value"[..]),
            "get does not consume"
        );
        assert_eq!(
            store.take(&k, now).await.unwrap().as_deref(),
            Some(&b"value"[..])
        );
        assert_eq!(store.get(&k, now).await.unwrap(), None, "take removed it");
        assert_eq!(store.take(&k, now).await.unwrap(), None);
    }

    /// Arbitrary bytes (NUL, 0xFF, invalid UTF-8, empty, 4 KiB) come back unchanged.
    pub async fn binary_values<S: OtpStore + ?Sized>(store: Arc<S>) {
        let now = at(T0);
        let big: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(131) % 256) as u8)
            .collect();
        for value in [
            &b""[..],
            b"\x00",
            b"\xff\xfe\x00\x01",
            b"\xc3\x28",
            b"{tag}:x",
            &big,
        ] {
            let k = key("bin");
            store.put(&k, value, at(T0 + 60), now).await.unwrap();
            assert_eq!(store.get(&k, now).await.unwrap().as_deref(), Some(value));
            assert_eq!(store.take(&k, now).await.unwrap().as_deref(), Some(value));
        }
    }

    /// `put` replaces both the value and the expiry of a live record.
    pub async fn put_replaces_value_and_expiry<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("replace");
        store.put(&k, b"one", at(T0 + 100), at(T0)).await.unwrap();
        store.put(&k, b"two", at(T0 + 10), at(T0)).await.unwrap();
        assert_eq!(
            store.get(&k, at(T0 + 9)).await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            store.get(&k, at(T0 + 10)).await.unwrap(),
            None,
            "the new, shorter expiry holds"
        );
        store
            .put(&k, b"three", at(T0 + 500), at(T0 + 20))
            .await
            .unwrap();
        assert_eq!(
            store.get(&k, at(T0 + 499)).await.unwrap().as_deref(),
            Some(&b"three"[..])
        );
    }

    /// A second `put_if_absent` on a live key fails and leaves the first value.
    pub async fn put_if_absent_collision<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("pia");
        let now = at(T0);
        assert!(store
            .put_if_absent(&k, b"first", at(T0 + 60), now)
            .await
            .unwrap());
        assert!(!store
            .put_if_absent(&k, b"second", at(T0 + 600), now)
            .await
            .unwrap());
        assert_eq!(
            store.get(&k, now).await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(
            store.get(&k, at(T0 + 60)).await.unwrap(),
            None,
            "the loser's expiry was not applied"
        );
    }

    /// An expired record does not block `put_if_absent`.
    pub async fn put_if_absent_after_expiry<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("pia-exp");
        assert!(store
            .put_if_absent(&k, b"old", at(T0 + 60), at(T0))
            .await
            .unwrap());
        assert!(!store
            .put_if_absent(&k, b"new", at(T0 + 200), at(T0 + 59))
            .await
            .unwrap());
        assert!(store
            .put_if_absent(&k, b"new", at(T0 + 200), at(T0 + 60))
            .await
            .unwrap());
        assert_eq!(
            store.get(&k, at(T0 + 199)).await.unwrap().as_deref(),
            Some(&b"new"[..])
        );
    }

    /// Of 64 concurrent `put_if_absent` calls on one key, exactly one stores its value.
    pub async fn put_if_absent_concurrent_exactly_one<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("pia-race");
        let results = concurrently(64, |i| {
            let (store, k) = (store.clone(), k.clone());
            async move {
                let v = i.to_string();
                let won = store
                    .put_if_absent(&k, v.as_bytes(), at(T0 + 60), at(T0))
                    .await
                    .unwrap();
                (i, won)
            }
        })
        .await;
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, w)| *w)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one put_if_absent wins");
        let stored = store.get(&k, at(T0)).await.unwrap().unwrap();
        assert_eq!(
            stored,
            winners[0].to_string().into_bytes(),
            "the winner's value is stored"
        );
    }

    /// Liveness is decided by the `now` passed in, never by a clock: a record written "in 1970"
    /// or "after 2038" behaves the same, and is live exactly while `now < expires_at`.
    pub async fn expiry_follows_now_passed_in<S: OtpStore + ?Sized>(store: Arc<S>) {
        for base in [1_000u64, T0, 20_000_000_000] {
            let k = key("exp");
            store.put(&k, b"v", at(base + 300), at(base)).await.unwrap();
            assert!(
                store.get(&k, at(base + 299)).await.unwrap().is_some(),
                "live at ttl-1 (base {base})"
            );
            assert!(
                store.get(&k, at(base + 300)).await.unwrap().is_none(),
                "expired at ttl (base {base})"
            );
            assert!(store.get(&k, at(base + 10_000)).await.unwrap().is_none());
            // Going back in time makes it live again: the store itself forgot nothing.
            assert!(
                store.get(&k, at(base)).await.unwrap().is_some(),
                "live again at base {base}"
            );
            assert!(
                store.take(&k, at(base + 300)).await.unwrap().is_none(),
                "take at expiry gives nothing"
            );
        }
    }

    /// `take` returns the value once.
    pub async fn take_is_single_use<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("take");
        store.put(&k, b"once", at(T0 + 60), at(T0)).await.unwrap();
        assert_eq!(
            store.take(&k, at(T0)).await.unwrap().as_deref(),
            Some(&b"once"[..])
        );
        assert_eq!(store.take(&k, at(T0)).await.unwrap(), None);
        assert!(
            store
                .put_if_absent(&k, b"again", at(T0 + 60), at(T0))
                .await
                .unwrap(),
            "taken key is free"
        );
    }

    /// Of 64 concurrent `take`s of one key, exactly one receives the value.
    pub async fn take_concurrent_exactly_one<S: OtpStore + ?Sized>(store: Arc<S>) {
        for round in 0..3 {
            let k = key("take-race");
            store.put(&k, b"prize", at(T0 + 60), at(T0)).await.unwrap();
            let results = concurrently(64, |_| {
                let (store, k) = (store.clone(), k.clone());
                async move { store.take(&k, at(T0)).await.unwrap() }
            })
            .await;
            let won: Vec<_> = results.into_iter().flatten().collect();
            assert_eq!(
                won,
                vec![b"prize".to_vec()],
                "exactly one take wins (round {round})"
            );
        }
    }

    /// `delete` removes live and expired records; deleting nothing is fine.
    pub async fn delete_removes_live_and_expired<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("del");
        store.delete(&k).await.unwrap();
        store.put(&k, b"v", at(T0 + 60), at(T0)).await.unwrap();
        store.delete(&k).await.unwrap();
        assert_eq!(store.get(&k, at(T0)).await.unwrap(), None);
        store.put(&k, b"v", at(T0 + 60), at(T0)).await.unwrap();
        store.delete(&k).await.unwrap();
        assert_eq!(
            store.get(&k, at(T0 - 1)).await.unwrap(),
            None,
            "gone, not only expired"
        );
        let c = key("del-counter");
        store.increment(&c, at(T0 + 60), at(T0)).await.unwrap();
        store.delete(&c).await.unwrap();
        assert_eq!(store.increment(&c, at(T0 + 60), at(T0)).await.unwrap(), 1);
    }

    /// A counter counts from 1, keeps the expiry of its first increment, and restarts after it.
    pub async fn increment_counts_and_keeps_expiry<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("ctr");
        assert_eq!(store.increment(&k, at(T0 + 100), at(T0)).await.unwrap(), 1);
        assert_eq!(
            store
                .increment(&k, at(T0 + 900), at(T0 + 50))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .increment(&k, at(T0 + 900), at(T0 + 99))
                .await
                .unwrap(),
            3
        );
        // The first expiry (T0 + 100) still rules: the later ones were not applied.
        assert_eq!(
            store
                .increment(&k, at(T0 + 300), at(T0 + 100))
                .await
                .unwrap(),
            1,
            "restarted"
        );
        assert_eq!(
            store
                .increment(&k, at(T0 + 900), at(T0 + 299))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .increment(&k, at(T0 + 900), at(T0 + 300))
                .await
                .unwrap(),
            1
        );
    }

    /// 64 concurrent increments of a fresh counter return exactly 1..=64.
    pub async fn increment_concurrent_counts_all<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("ctr-race");
        let mut counts = concurrently(64, |_| {
            let (store, k) = (store.clone(), k.clone());
            async move { store.increment(&k, at(T0 + 60), at(T0)).await.unwrap() }
        })
        .await;
        counts.sort_unstable();
        assert_eq!(counts, (1..=64).collect::<Vec<u64>>());
        assert_eq!(store.increment(&k, at(T0 + 60), at(T0)).await.unwrap(), 65);
    }

    /// `advance` stores only a greater number while the record lives, any number after it expired.
    pub async fn advance_only_forward<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("step");
        assert!(
            store.advance(&k, 10, at(T0 + 90), at(T0)).await.unwrap(),
            "first value"
        );
        assert!(
            !store.advance(&k, 10, at(T0 + 90), at(T0)).await.unwrap(),
            "equal refused"
        );
        assert!(
            !store.advance(&k, 9, at(T0 + 90), at(T0)).await.unwrap(),
            "smaller refused"
        );
        assert!(
            store.advance(&k, 11, at(T0 + 30), at(T0)).await.unwrap(),
            "greater stored"
        );
        assert!(!store
            .advance(&k, 11, at(T0 + 90), at(T0 + 29))
            .await
            .unwrap());
        // The last success set the expiry to T0 + 30.
        assert!(
            store
                .advance(&k, 5, at(T0 + 90), at(T0 + 30))
                .await
                .unwrap(),
            "expired: any value"
        );
        assert!(!store
            .advance(&k, 5, at(T0 + 90), at(T0 + 31))
            .await
            .unwrap());
        let big = key("step-big");
        assert!(store
            .advance(&big, (1 << 40) + 1, at(T0 + 90), at(T0))
            .await
            .unwrap());
        assert!(
            !store
                .advance(&big, 1 << 40, at(T0 + 90), at(T0))
                .await
                .unwrap(),
            "compared as numbers"
        );
        assert!(store
            .advance(&big, 1 << 41, at(T0 + 90), at(T0))
            .await
            .unwrap());
    }

    /// Of 64 concurrent `advance` calls with the same value, exactly one returns `true`.
    pub async fn advance_concurrent_same_value_exactly_one<S: OtpStore + ?Sized>(store: Arc<S>) {
        for step in [56_666_666u64, 56_666_667] {
            let k = key("step-race");
            let wins = concurrently(64, |_| {
                let (store, k) = (store.clone(), k.clone());
                async move { store.advance(&k, step, at(T0 + 90), at(T0)).await.unwrap() }
            })
            .await;
            assert_eq!(
                wins.iter().filter(|w| **w).count(),
                1,
                "exactly one advance to {step}"
            );
        }
    }

    /// Racing `advance` calls with values 1..=64: the largest always wins, and afterwards no
    /// value up to it is accepted.
    pub async fn advance_concurrent_racing_values<S: OtpStore + ?Sized>(store: Arc<S>) {
        let k = key("step-race-many");
        let wins = concurrently(64, |i| {
            let (store, k) = (store.clone(), k.clone());
            async move {
                let v = i as u64 + 1;
                (v, store.advance(&k, v, at(T0 + 90), at(T0)).await.unwrap())
            }
        })
        .await;
        assert!(
            wins.iter().any(|(v, w)| *v == 64 && *w),
            "the largest value is stored"
        );
        for v in [1u64, 32, 64] {
            assert!(!store.advance(&k, v, at(T0 + 90), at(T0)).await.unwrap());
        }
        assert!(store.advance(&k, 65, at(T0 + 90), at(T0)).await.unwrap());
    }

    /// Keys that differ by one character, extend one another or share a hash tag are independent.
    pub async fn key_isolation<S: OtpStore + ?Sized>(store: Arc<S>) {
        let tag = unique("iso");
        let keys: Vec<StoreKey> = [
            format!("{{{tag}}}:a"),
            format!("{{{tag}}}:b"),
            format!("{{{tag}}}:a:b"),
            format!("{{{tag}}}:A"),
            format!("{{{tag}x}}:a"),
            format!("x{{{tag}}}:a"),
        ]
        .into_iter()
        .map(StoreKey::new)
        .collect();
        let now = at(T0);
        for (i, k) in keys.iter().enumerate() {
            store
                .put(k, i.to_string().as_bytes(), at(T0 + 60), now)
                .await
                .unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                store.get(k, now).await.unwrap(),
                Some(i.to_string().into_bytes())
            );
        }
        store.take(&keys[0], now).await.unwrap();
        store.delete(&keys[1]).await.unwrap();
        assert_eq!(
            store
                .increment(&StoreKey::new(format!("{{{tag}}}:ctr")), at(T0 + 60), now)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .increment(&StoreKey::new(format!("{{{tag}}}:ctr2")), at(T0 + 60), now)
                .await
                .unwrap(),
            1
        );
        assert!(store
            .advance(&StoreKey::new(format!("{{{tag}}}:s")), 5, at(T0 + 60), now)
            .await
            .unwrap());
        assert!(store
            .advance(&StoreKey::new(format!("{{{tag}}}:s2")), 5, at(T0 + 60), now)
            .await
            .unwrap());
        for (i, k) in keys.iter().enumerate().skip(2) {
            assert_eq!(
                store.get(k, now).await.unwrap(),
                Some(i.to_string().into_bytes()),
                "key {i} untouched"
            );
        }
    }

    /// `purge_expired(now)` deletes the records expired by `now` and only those.
    ///
    /// Its times lie in the first minutes of 1970, before those of every other body, so that
    /// it purges nothing another test running beside it on the same store still needs.
    pub async fn purge_removes_only_expired<S: OtpStore + Purge + ?Sized>(store: Arc<S>) {
        const B: u64 = 10;
        let (dead, edge, live) = (key("dead"), key("edge"), key("live"));
        let ctr = key("live-ctr");
        store.put(&dead, b"d", at(B + 10), at(B)).await.unwrap();
        store.put(&edge, b"e", at(B + 100), at(B)).await.unwrap();
        store.put(&live, b"l", at(B + 101), at(B)).await.unwrap();
        store.increment(&ctr, at(B + 500), at(B)).await.unwrap();
        let purged = store.purge_expired(at(B + 100)).await.unwrap();
        assert!(
            purged >= 2,
            "at least our two expired records were purged, got {purged}"
        );
        // Looking from before their expiry shows what is physically left.
        assert_eq!(
            store.get(&dead, at(B)).await.unwrap(),
            None,
            "expired record deleted"
        );
        assert_eq!(
            store.get(&edge, at(B)).await.unwrap(),
            None,
            "record expiring at `now` deleted"
        );
        assert_eq!(
            store.get(&live, at(B)).await.unwrap().as_deref(),
            Some(&b"l"[..]),
            "live record kept"
        );
        assert_eq!(
            store.increment(&ctr, at(B + 500), at(B)).await.unwrap(),
            2,
            "live counter kept"
        );
    }
}

/// Conformance bodies for [`EnrollmentStore`].
pub mod enrollment {
    use super::*;
    use crate::store::{BackupCodeRecord, EmailRecord, EnrollmentRecord, PendingTotp, TotpRecord};

    const T0: u64 = 1_700_000_000;

    fn user() -> String {
        unique("user")
    }

    fn record(n: u8) -> EnrollmentRecord {
        let mut r = EnrollmentRecord::new();
        let mut totp = TotpRecord::new(vec![n, 0, 255, 7, 42], "SHA1", 6, 30, at(T0));
        totp.confirmed_at = Some(at(T0 + 5));
        r.totp = Some(totp);
        r.pending_totp = Some(PendingTotp::new(
            TotpRecord::new(vec![1, 2, 3], "SHA256", 8, 60, at(T0 + 1)),
            vec![BackupCodeRecord::new(vec![9; 32], None)],
            at(T0 + 600),
        ));
        r.email = Some(EmailRecord::new(
            format!("user{n}+2fa@example.com"),
            at(T0 + 2),
        ));
        r.last_verified_at = Some(at(T0 + u64::from(n)));
        r
    }

    fn codes(seed: u8, n: u8) -> Vec<BackupCodeRecord> {
        (0..n)
            .map(|i| {
                let lookup: Vec<u8> = (0..32u8).map(|j| seed ^ i.wrapping_mul(31) ^ j).collect();
                let verifier =
                    (i % 2 == 0).then(|| format!("$argon2id$v=19$m=19456,t=2,p=1${seed}{i}"));
                BackupCodeRecord::new(lookup, verifier)
            })
            .collect()
    }

    /// A saved record loads back equal, with the revision `save` returned.
    pub async fn record_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let r1 = record(1);
        let rev1 = store
            .save(&u, &r1, None)
            .await
            .unwrap()
            .expect("first save");
        assert_eq!(store.load(&u).await.unwrap(), Some((r1, rev1)));
        let r2 = record(2);
        let rev2 = store
            .save(&u, &r2, Some(rev1))
            .await
            .unwrap()
            .expect("second save");
        assert_ne!(rev1, rev2, "each write gets a new revision");
        assert_eq!(store.load(&u).await.unwrap(), Some((r2, rev2)));
        let empty = EnrollmentRecord::new();
        let rev3 = store
            .save(&u, &empty, Some(rev2))
            .await
            .unwrap()
            .expect("third save");
        assert_eq!(store.load(&u).await.unwrap(), Some((empty, rev3)));
    }

    /// An unknown user has no record and no backup codes.
    pub async fn unknown_user_is_empty<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        assert_eq!(store.load(&u).await.unwrap(), None);
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 0);
        assert_eq!(store.find_backup_code(&u, &[1; 32]).await.unwrap(), None);
        assert!(!store
            .consume_backup_code(&u, &[1; 32], at(T0))
            .await
            .unwrap());
        store.remove(&u).await.unwrap();
    }

    /// `save` writes nothing when the expected revision is not the stored one.
    pub async fn save_refuses_stale_revisions<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let rev1 = store.save(&u, &record(1), None).await.unwrap().unwrap();
        assert_eq!(
            store.save(&u, &record(9), None).await.unwrap(),
            None,
            "record exists"
        );
        let rev2 = store
            .save(&u, &record(2), Some(rev1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.save(&u, &record(9), Some(rev1)).await.unwrap(),
            None,
            "stale revision"
        );
        assert_eq!(
            store
                .save(&u, &record(9), Some(rev2.wrapping_add(1000)))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.load(&u).await.unwrap(),
            Some((record(2), rev2)),
            "nothing written"
        );
        let other = user();
        assert_eq!(
            store.save(&other, &record(3), Some(rev2)).await.unwrap(),
            None,
            "no record yet"
        );
        assert_eq!(store.load(&other).await.unwrap(), None);
    }

    /// Of 32 concurrent writers expecting the same revision, exactly one succeeds.
    pub async fn save_concurrent_exactly_one<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let first = concurrently(32, |i| {
            let (store, u) = (store.clone(), u.clone());
            async move { store.save(&u, &record(i as u8), None).await.unwrap() }
        })
        .await;
        let won: Vec<Revision> = first.into_iter().flatten().collect();
        assert_eq!(won.len(), 1, "exactly one creator");
        let rev = won[0];
        let second = concurrently(32, |i| {
            let (store, u) = (store.clone(), u.clone());
            async move {
                (
                    i,
                    store
                        .save(&u, &record(100 + i as u8), Some(rev))
                        .await
                        .unwrap(),
                )
            }
        })
        .await;
        let winners: Vec<_> = second
            .into_iter()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .collect();
        assert_eq!(winners.len(), 1, "exactly one updater");
        let (i, rev2) = winners[0];
        assert_eq!(
            store.load(&u).await.unwrap(),
            Some((record(100 + i as u8), rev2))
        );
    }

    use crate::store::Revision;

    /// `remove` deletes the record and every backup code; a new enrollment can start afterwards.
    pub async fn remove_clears_record_and_codes<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        store.save(&u, &record(1), None).await.unwrap().unwrap();
        store
            .replace_backup_codes(&u, &codes(1, 10), at(T0))
            .await
            .unwrap();
        store.remove(&u).await.unwrap();
        assert_eq!(store.load(&u).await.unwrap(), None);
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 0);
        assert_eq!(
            store
                .find_backup_code(&u, &codes(1, 10)[0].lookup)
                .await
                .unwrap(),
            None
        );
        assert!(!store
            .consume_backup_code(&u, &codes(1, 10)[3].lookup, at(T0))
            .await
            .unwrap());
        store.remove(&u).await.unwrap();
        let rev = store
            .save(&u, &record(2), None)
            .await
            .unwrap()
            .expect("enrol again");
        assert_eq!(store.load(&u).await.unwrap(), Some((record(2), rev)));
    }

    /// A writer holding a revision from before a removal cannot overwrite a later enrollment.
    pub async fn stale_revision_refused_after_remove<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let old = store.save(&u, &record(1), None).await.unwrap().unwrap();
        store.remove(&u).await.unwrap();
        assert_eq!(
            store.save(&u, &record(7), Some(old)).await.unwrap(),
            None,
            "removed record"
        );
        let new = store.save(&u, &record(2), None).await.unwrap().unwrap();
        assert_eq!(
            store.save(&u, &record(8), Some(old)).await.unwrap(),
            None,
            "revision from before the removal"
        );
        assert_eq!(store.load(&u).await.unwrap(), Some((record(2), new)));
    }

    /// Stored codes are found by lookup, with their verifier, and counted.
    pub async fn backup_codes_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let set = codes(7, 10);
        store.replace_backup_codes(&u, &set, at(T0)).await.unwrap();
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 10);
        for c in &set {
            assert_eq!(
                store
                    .find_backup_code(&u, &c.lookup)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(c)
            );
        }
        let mut wrong = set[0].lookup.clone();
        wrong[31] ^= 1;
        assert_eq!(store.find_backup_code(&u, &wrong).await.unwrap(), None);
        assert_eq!(
            store
                .find_backup_code(&u, &set[0].lookup[..16])
                .await
                .unwrap(),
            None,
            "no prefix match"
        );
        assert!(!store.consume_backup_code(&u, &wrong, at(T0)).await.unwrap());
        store.replace_backup_codes(&u, &[], at(T0)).await.unwrap();
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 0);
    }

    /// A code is consumed once; afterwards it is neither found nor counted.
    pub async fn backup_code_consumed_once<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let set = codes(3, 10);
        store.replace_backup_codes(&u, &set, at(T0)).await.unwrap();
        assert!(store
            .consume_backup_code(&u, &set[4].lookup, at(T0 + 1))
            .await
            .unwrap());
        assert!(
            !store
                .consume_backup_code(&u, &set[4].lookup, at(T0 + 2))
                .await
                .unwrap(),
            "second use"
        );
        assert_eq!(
            store.find_backup_code(&u, &set[4].lookup).await.unwrap(),
            None
        );
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 9);
        for c in &set[5..] {
            assert!(store
                .consume_backup_code(&u, &c.lookup, at(T0 + 3))
                .await
                .unwrap());
        }
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 4);
    }

    /// Of 32 concurrent attempts to consume one code, exactly one succeeds.
    pub async fn backup_code_concurrent_consume_exactly_one<S: EnrollmentStore + ?Sized>(
        store: Arc<S>,
    ) {
        let u = user();
        let set = codes(5, 10);
        store.replace_backup_codes(&u, &set, at(T0)).await.unwrap();
        for c in &set[..3] {
            let wins = concurrently(32, |_| {
                let (store, u, lookup) = (store.clone(), u.clone(), c.lookup.clone());
                async move {
                    store
                        .consume_backup_code(&u, &lookup, at(T0))
                        .await
                        .unwrap()
                }
            })
            .await;
            assert_eq!(
                wins.iter().filter(|w| **w).count(),
                1,
                "exactly one consumption"
            );
        }
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 7);
    }

    /// Replacing the set voids every old code, used or not.
    pub async fn backup_codes_replacement_voids_old<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let u = user();
        let old = codes(1, 10);
        let new = codes(2, 8);
        store.replace_backup_codes(&u, &old, at(T0)).await.unwrap();
        assert!(store
            .consume_backup_code(&u, &old[0].lookup, at(T0))
            .await
            .unwrap());
        store
            .replace_backup_codes(&u, &new, at(T0 + 10))
            .await
            .unwrap();
        assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 8);
        for c in &old {
            assert_eq!(store.find_backup_code(&u, &c.lookup).await.unwrap(), None);
            assert!(!store
                .consume_backup_code(&u, &c.lookup, at(T0 + 11))
                .await
                .unwrap());
        }
        assert!(store
            .consume_backup_code(&u, &new[0].lookup, at(T0 + 12))
            .await
            .unwrap());
        // A code shared by the old and the new set is usable again: it belongs to the new set.
        store
            .replace_backup_codes(&u, &new, at(T0 + 20))
            .await
            .unwrap();
        assert!(store
            .consume_backup_code(&u, &new[0].lookup, at(T0 + 21))
            .await
            .unwrap());
    }

    /// One user's codes and record never answer for another user.
    pub async fn backup_codes_kept_per_user<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
        let (a, b) = (user(), user());
        let prefix_of_a = a[..a.len() - 1].to_owned();
        let set = codes(4, 10);
        store.replace_backup_codes(&a, &set, at(T0)).await.unwrap();
        store.save(&a, &record(1), None).await.unwrap().unwrap();
        for other in [&b, &prefix_of_a] {
            assert_eq!(store.backup_codes_remaining(other).await.unwrap(), 0);
            assert_eq!(
                store.find_backup_code(other, &set[0].lookup).await.unwrap(),
                None
            );
            assert!(!store
                .consume_backup_code(other, &set[0].lookup, at(T0))
                .await
                .unwrap());
            assert_eq!(store.load(other).await.unwrap(), None);
        }
        store
            .replace_backup_codes(&b, &set[..2], at(T0))
            .await
            .unwrap();
        assert!(store
            .consume_backup_code(&b, &set[0].lookup, at(T0))
            .await
            .unwrap());
        assert!(
            store
                .consume_backup_code(&a, &set[0].lookup, at(T0))
                .await
                .unwrap(),
            "a's copy unaffected"
        );
        store.remove(&b).await.unwrap();
        assert_eq!(store.backup_codes_remaining(&a).await.unwrap(), 9);
        assert!(store.load(&a).await.unwrap().is_some());
    }
}
