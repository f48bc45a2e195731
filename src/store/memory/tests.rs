//! The sweep and the shrinking of [`MemoryOtpStore`]'s map: expired records are reached
//! between live ones, a stale flood drains and gives its memory back, and a steady map keeps its
//! table.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use super::lock;
use super::state::{SHRINK_FLOOR, SWEEP_CHECKS};
use super::MemoryOtpStore;
use crate::clock::Timestamp;
use crate::store::{OtpStore, StoreKey};

fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn capacity(store: &MemoryOtpStore) -> usize {
    lock(&store.state).entries.capacity()
}

/// Writes `put`s on one key at `now` until the store holds `target` records; returns how
/// many it took, or `None` after `limit`.
fn writes_until(store: &MemoryOtpStore, now: u64, target: usize, limit: usize) -> Option<usize> {
    let key = StoreKey::new("{w}:writer");
    (1..=limit).find(|_| {
        run(store.put(&key, b"w", at(now + 1_000), at(now))).unwrap();
        store.len() == target
    })
}

#[test]
fn the_sweep_reaches_expired_records_between_live_ones() {
    let store = MemoryOtpStore::new();
    let n = 20_000;
    for i in 0..n {
        // Alternately a record that outlives the test and one that expires at 200.
        let expires = if i % 2 == 0 { 1_000_000 } else { 200 };
        run(store.put(
            &StoreKey::new(format!("{{k}}:{i}")),
            b"v",
            at(expires),
            at(100),
        ))
        .unwrap();
    }
    // Each write steps over SWEEP_CHECKS live records. The pass starts wherever the cursor
    // stood, and after it wraps, a removal can pull a record already seen back under it:
    // still within len / SWEEP_CHECKS writes.
    let took = writes_until(&store, 300, n / 2 + 1, n).unwrap();
    assert!(took <= n / SWEEP_CHECKS, "{took} writes");
    for i in (0..n).step_by(2) {
        let key = StoreKey::new(format!("{{k}}:{i}"));
        assert_eq!(
            run(store.get(&key, at(300))).unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}

#[test]
fn a_stale_flood_drains_and_the_table_shrinks() {
    let store = MemoryOtpStore::new();
    let n = 200_000;
    for i in 0..n {
        run(store.put(&StoreKey::new(format!("{{f}}:{i}")), b"v", at(200), at(100))).unwrap();
    }
    let full = capacity(&store);
    assert!(full >= n);
    // Far fewer writes than records: each removes up to len / 4096 expired ones.
    let took = writes_until(&store, 300, 1, n / 10).unwrap();
    let state = lock(&store.state);
    let left = state.entries.capacity();
    assert!(left <= SHRINK_FLOOR, "{left} slots left");
    // About one shrink per halving, not one per write.
    assert!(state.shrinks <= 20, "{} shrinks", state.shrinks);
    eprintln!(
        "{n} expired records drained by {took} writes; {full} slots shrank to {left} in {} \
         steps",
        state.shrinks
    );
}

#[test]
fn purge_shrinks_the_table() {
    let store = MemoryOtpStore::new();
    for i in 0..50_000 {
        let expires = if i < 100 { 1_000 } else { 200 };
        run(store.put(
            &StoreKey::new(format!("{{p}}:{i}")),
            b"v",
            at(expires),
            at(100),
        ))
        .unwrap();
    }
    assert!(capacity(&store) >= 50_000);
    assert_eq!(store.purge_expired(at(300)), 49_900);
    assert_eq!(store.len(), 100);
    assert!(capacity(&store) < 256, "{} slots left", capacity(&store));
}

#[test]
fn a_steady_map_does_not_shrink() {
    // Records come and go around a number just past a growth boundary (3584 slots): the
    // table keeps its size however many records are removed.
    let store = MemoryOtpStore::new();
    let live = 3_585;
    let key = |i: usize| StoreKey::new(format!("{{s}}:{i}"));
    for i in 0..live {
        run(store.put(&key(i), b"v", at(10_000), at(100))).unwrap();
    }
    for i in live..live * 20 {
        run(store.put(&key(i), b"v", at(10_000), at(100))).unwrap();
        assert!(run(store.take(&key(i - live), at(100))).unwrap().is_some());
        if i % 7 == 0 {
            // Dip a few below, and come back.
            run(store.delete(&key(i - live + 1))).unwrap();
            run(store.put(&key(i - live + 1), b"v", at(10_000), at(100))).unwrap();
        }
    }
    assert_eq!(lock(&store.state).shrinks, 0);
}

/// A user record of version 1 (before the epoch), as an earlier release kept it under the
/// user's key, reads with epoch 0; the next write keeps it in version 2.
#[test]
fn a_version_1_user_record_reads_with_epoch_0() {
    use crate::store::flow::{UserLimits, UserState, USER_STATE_LEN, USER_STATE_V1_LEN};
    let store = MemoryOtpStore::new();
    let user = StoreKey::new("{v1}");
    let state = UserState {
        level: 2,
        last_step: Some(5),
        ..UserState::default()
    };
    let mut v1 = state.to_bytes()[..USER_STATE_V1_LEN].to_vec();
    v1[0] = 1;
    run(store.put(&user, &v1, at(5_000), at(100))).unwrap();
    let limits = UserLimits::new(
        3,
        std::time::Duration::from_secs(10_000),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(
        run(store.user_state(&user, &limits, at(100))).unwrap(),
        state
    );
    assert_eq!(
        run(store.end_challenges(&user, &limits, at(100))).unwrap(),
        1
    );
    let raw = run(store.get(&user, at(100))).unwrap().unwrap();
    assert_eq!((raw[0], raw.len()), (2, USER_STATE_LEN));
    let read = run(store.user_state(&user, &limits, at(4_999))).unwrap();
    assert_eq!(
        (read.level, read.epoch),
        (2, 1),
        "kept as long as before, at least"
    );
}
