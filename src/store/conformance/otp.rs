//! Conformance bodies for [`OtpStore`].

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
