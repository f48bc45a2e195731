//! Conformance bodies for the composite operations of [`OtpStore`] (see [`flow`](crate::store::flow)).
//!
//! They run on a store's native operations, and (through [`PrimitivesOnly`]) on the defaults
//! built from its primitives, so both keep the same rules.

use std::time::Duration;

use super::*;
use crate::store::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Outcome, Reserved, SendRefused, SendSpec, Settled,
    Settlement, UserLimits,
};

pub(super) const T0: u64 = 1_700_000_000;

pub(super) struct Keys {
    pub(super) user: StoreKey,
    pub(super) challenge: StoreKey,
    pub(super) cooldown: StoreKey,
}

pub(super) fn keys() -> Keys {
    let tag = unique("fl");
    Keys {
        user: StoreKey::new(format!("tf:u:{{{tag}}}")),
        challenge: StoreKey::new(format!("tf:u:{{{tag}}}:c:1")),
        cooldown: StoreKey::new(format!("tf:u:{{{tag}}}:c:1:cool")),
    }
}

pub(super) fn limits() -> UserLimits {
    UserLimits::new(
        10,
        Duration::from_secs(86_400),
        Duration::from_secs(400 * 86_400),
    )
}

pub(super) fn send(k: &Keys) -> SendSpec<'_> {
    SendSpec::new(&k.cooldown, at(T0 + 60), 3, Duration::from_secs(900))
}

pub(super) fn attempt(k: &Keys, max: u32) -> AttemptSpec<'_> {
    AttemptSpec {
        challenge: Some((&k.challenge, max)),
        user: &k.user,
        limits: limits(),
    }
}

pub(super) fn pass<'a>(k: &'a Keys, step: Option<u64>) -> Settlement<'a> {
    Settlement {
        challenge: Some(&k.challenge),
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Passed { totp_step: step },
    }
}

pub(super) async fn create<S: OtpStore + ?Sized>(
    store: &S,
    k: &Keys,
    code: Option<&[u8]>,
) -> Begun {
    let new = NewChallenge {
        user: &k.user,
        limits: limits(),
        challenge: &k.challenge,
        value: b"challenge value",
        expires_at: at(T0 + 300),
        send: code.map(|c| (send(k), c)),
        send_required: false,
    };
    store.begin_challenge(&new, at(T0)).await.unwrap()
}

pub(super) fn opened(o: Opened) -> crate::store::flow::OpenAttempt {
    match o {
        Opened::Open(a) => a,
        other => panic!("expected an open attempt, got {other:?}"),
    }
}

/// A challenge is created with its value and code; a second one under the same key collides;
/// the code, the value and the expiry come back from an attempt.
pub async fn begin_creates_once<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    assert_eq!(
        create(&*store, &k, Some(b"code-1")).await,
        Begun::Created { send: Some(Ok(())) }
    );
    assert_eq!(create(&*store, &k, None).await, Begun::Collision);
    let a = opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let ch = a.challenge.unwrap();
    assert_eq!(ch.value, b"challenge value");
    assert_eq!(ch.code.as_deref(), Some(&b"code-1"[..]));
    assert_eq!(ch.expires_at, at(T0 + 300));
    assert_eq!((a.attempts, a.failures), (1, 1));
    assert_eq!(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 300))
            .await
            .unwrap(),
        Opened::NoChallenge,
        "the challenge lapses at its expiry, by the now passed in"
    );
}

/// The send of a challenge's code keeps the cooldown and the per-user cap; a refused send
/// stores no code, and a required send that is refused creates nothing.
pub async fn begin_reserves_the_send<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, Some(b"c")).await;
    // A second challenge of the same user, while the first one's cooldown runs elsewhere.
    let other = StoreKey::new(format!("{}:c:2", k.user.as_str()));
    let other_cool = StoreKey::new(format!("{}:c:2:cool", k.user.as_str()));
    let spec = SendSpec::new(&other_cool, at(T0 + 60), 1, Duration::from_secs(900));
    let new = NewChallenge {
        user: &k.user,
        limits: limits(),
        challenge: &other,
        value: b"v2",
        expires_at: at(T0 + 300),
        send: Some((spec, b"c2")),
        send_required: true,
    };
    // The cap of 1 is already used by the first challenge's send.
    assert!(matches!(
        store.begin_challenge(&new, at(T0)).await.unwrap(),
        Begun::SendRefused(SendRefused::Capped { .. })
    ));
    let probe = AttemptSpec {
        challenge: Some((&other, 5)),
        user: &k.user,
        limits: limits(),
    };
    assert_eq!(
        store.open_attempt(&probe, at(T0)).await.unwrap(),
        Opened::NoChallenge,
        "a refused required send creates nothing"
    );
    let new = NewChallenge {
        send_required: false,
        ..new
    };
    assert!(matches!(
        store.begin_challenge(&new, at(T0)).await.unwrap(),
        Begun::Created {
            send: Some(Err(SendRefused::Capped { .. }))
        }
    ));
    let a = opened(store.open_attempt(&probe, at(T0)).await.unwrap());
    assert_eq!(a.challenge.unwrap().code, None, "no code without a send");
}

/// Resends: the challenge must be live; the cooldown and the cap refuse; a granted send
/// returns the challenge's value; a new code keeps the attempt count.
pub async fn resend_keeps_limits_and_attempts<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    let missing = StoreKey::new(format!("{}:c:none", k.user.as_str()));
    assert_eq!(
        store
            .reserve_send(&k.user, Some(&missing), &send(&k), at(T0))
            .await
            .unwrap(),
        Reserved::NoChallenge
    );
    create(&*store, &k, Some(b"c1")).await;
    assert_eq!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &send(&k), at(T0 + 30))
            .await
            .unwrap(),
        Reserved::Refused(SendRefused::Cooldown { until: at(T0 + 60) })
    );
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let spec = SendSpec::new(&k.cooldown, at(T0 + 120), 3, Duration::from_secs(900));
    assert_eq!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &spec, at(T0 + 60))
            .await
            .unwrap(),
        Reserved::Granted(Some(b"challenge value".to_vec()))
    );
    assert!(store
        .store_code(&k.challenge, None, b"c2", at(T0 + 60))
        .await
        .unwrap());
    let a = opened(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 61))
            .await
            .unwrap(),
    );
    assert_eq!(a.attempts, 2, "a new code keeps the attempt count");
    assert_eq!(a.challenge.unwrap().code.as_deref(), Some(&b"c2"[..]));
    // Third send of the window, then the cap.
    let spec = SendSpec::new(&k.cooldown, at(T0 + 200), 3, Duration::from_secs(900));
    assert!(matches!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &spec, at(T0 + 130))
            .await
            .unwrap(),
        Reserved::Granted(_)
    ));
    let spec = SendSpec::new(&k.cooldown, at(T0 + 300), 3, Duration::from_secs(900));
    assert!(matches!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &spec, at(T0 + 250))
            .await
            .unwrap(),
        Reserved::Refused(SendRefused::Capped { .. })
    ));
    let later = T0 + 1_000;
    let spec = SendSpec::new(&k.cooldown, at(later + 60), 3, Duration::from_secs(900));
    assert!(
        matches!(
            store
                .reserve_send(&k.user, None, &spec, at(later))
                .await
                .unwrap(),
            Reserved::Granted(None)
        ),
        "the cap's window ends"
    );
}

/// `store_code` without `create` leaves a missing record missing; with it, it creates one,
/// and replacing the code of a live one keeps its attempts.
pub async fn store_code_creates_only_when_asked<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    assert!(!store
        .store_code(&k.challenge, None, b"c", at(T0))
        .await
        .unwrap());
    assert!(store
        .store_code(
            &k.challenge,
            Some((b"pending", at(T0 + 300))),
            b"c1",
            at(T0)
        )
        .await
        .unwrap());
    opened(store.open_attempt(&attempt(&k, 3), at(T0)).await.unwrap());
    assert!(store
        .store_code(
            &k.challenge,
            Some((b"pending 2", at(T0 + 400))),
            b"c2",
            at(T0 + 10)
        )
        .await
        .unwrap());
    let a = opened(
        store
            .open_attempt(&attempt(&k, 3), at(T0 + 350))
            .await
            .unwrap(),
    );
    assert_eq!(a.attempts, 2, "a new pending code keeps the attempt count");
    let ch = a.challenge.unwrap();
    assert_eq!(
        (ch.value.as_slice(), ch.code.as_deref(), ch.expires_at),
        (&b"pending 2"[..], Some(&b"c2"[..]), at(T0 + 400))
    );
}

/// The challenge's cap: attempts past it are refused and not counted against the user.
pub async fn open_stops_at_the_challenge_cap<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, None).await;
    for n in 1..=3 {
        let a = opened(store.open_attempt(&attempt(&k, 3), at(T0)).await.unwrap());
        assert_eq!((a.attempts, a.failures), (n, n));
    }
    assert_eq!(
        store.open_attempt(&attempt(&k, 3), at(T0)).await.unwrap(),
        Opened::Exhausted
    );
    let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_eq!(state.failures, 3, "the refused attempt is not charged");
}

/// Of 64 concurrent attempts on one challenge with a cap of 5, exactly 5 open.
pub async fn open_concurrent_respects_the_cap<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = Arc::new(keys());
    create(&*store, &k, None).await;
    let results = concurrently(64, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move { store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap() }
    })
    .await;
    let mut numbers: Vec<u32> = results
        .iter()
        .filter_map(|o| match o {
            Opened::Open(a) => Some(a.attempts),
            _ => None,
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert!(results
        .iter()
        .all(|o| matches!(o, Opened::Open(_) | Opened::Exhausted)));
}

/// The user's threshold holds across challenges, also under 64 concurrent attempts; the
/// attempt that reached it locks, and the lock refuses new challenges and attempts.
pub async fn threshold_and_lock_across_challenges<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = Arc::new(keys());
    let results = concurrently(64, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move {
            let spec = AttemptSpec {
                challenge: None,
                user: &k.user,
                limits: limits(),
            };
            store.open_attempt(&spec, at(T0)).await.unwrap()
        }
    })
    .await;
    let open: Vec<u32> = results
        .iter()
        .filter_map(|o| match o {
            Opened::Open(a) => Some(a.failures),
            _ => None,
        })
        .collect();
    assert_eq!(open.len(), 10, "exactly the threshold is opened");
    assert!(results.contains(&Opened::Locked { until: None }));
    let lock = Settlement {
        challenge: None,
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Lock {
            until: at(T0 + 900),
            level: 1,
        },
    };
    assert_eq!(store.settle(&lock, at(T0)).await.unwrap(), Settled::Done);
    assert_eq!(
        create(&*store, &k, None).await,
        Begun::Locked {
            until: at(T0 + 900)
        }
    );
    let spec = AttemptSpec {
        challenge: None,
        user: &k.user,
        limits: limits(),
    };
    assert_eq!(
        store.open_attempt(&spec, at(T0 + 899)).await.unwrap(),
        Opened::Locked {
            until: Some(at(T0 + 900))
        }
    );
    let a = opened(store.open_attempt(&spec, at(T0 + 900)).await.unwrap());
    assert_eq!((a.failures, a.level), (1, 1), "a new run, one level up");
    let state = store
        .user_state(&k.user, &limits(), at(T0 + 900))
        .await
        .unwrap();
    assert_eq!((state.level, state.locked_until), (1, at(T0 + 900)));
}

/// A pass takes the challenge, records the step and ends the run; the same step again is a
/// replay that takes nothing; a second pass finds the challenge gone.
pub async fn settle_passes_once_and_refuses_replays<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, None).await;
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    assert_eq!(
        store.settle(&pass(&k, Some(1_000)), at(T0)).await.unwrap(),
        Settled::Done
    );
    let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_eq!(state.failures, 0);
    assert_eq!(state.last_step, Some(1_000));
    assert_eq!(state.last_verified_at, Some(at(T0)));
    assert_eq!(
        store.settle(&pass(&k, None), at(T0)).await.unwrap(),
        Settled::ChallengeGone
    );
    // A new challenge: the same step is a replay and leaves the challenge in place.
    create(&*store, &k, None).await;
    opened(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 1))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .settle(&pass(&k, Some(1_000)), at(T0 + 1))
            .await
            .unwrap(),
        Settled::Replayed
    );
    assert_eq!(
        store
            .settle(&pass(&k, Some(999)), at(T0 + 1))
            .await
            .unwrap(),
        Settled::Replayed
    );
    assert_eq!(
        store
            .settle(&pass(&k, Some(1_001)), at(T0 + 2))
            .await
            .unwrap(),
        Settled::Done,
        "a replay took nothing: the next step still passes"
    );
}

/// Of 64 concurrent passes of one challenge with the same TOTP step, exactly one is done.
pub async fn settle_concurrent_exactly_one<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = Arc::new(keys());
    create(&*store, &k, None).await;
    let results = concurrently(64, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move { store.settle(&pass(&k, Some(77)), at(T0)).await.unwrap() }
    })
    .await;
    let done = results.iter().filter(|s| **s == Settled::Done).count();
    assert_eq!(done, 1, "exactly one pass settles");
}

/// A lapsed run is forgotten after the failure window, and a lock level after its lock lifts
/// and the window passes.
pub async fn runs_and_levels_lapse<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    let spec = AttemptSpec {
        challenge: None,
        user: &k.user,
        limits: limits(),
    };
    for _ in 0..3 {
        opened(store.open_attempt(&spec, at(T0)).await.unwrap());
    }
    let day = 86_400;
    let a = opened(store.open_attempt(&spec, at(T0 + day)).await.unwrap());
    assert_eq!(a.failures, 1, "the run lapsed");
    let lock = Settlement {
        challenge: None,
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Lock {
            until: at(T0 + day + 60),
            level: 3,
        },
    };
    store.settle(&lock, at(T0 + day)).await.unwrap();
    let a = opened(store.open_attempt(&spec, at(T0 + day + 60)).await.unwrap());
    assert_eq!(a.level, 3);
    let a = opened(
        store
            .open_attempt(&spec, at(T0 + 2 * day + 60))
            .await
            .unwrap(),
    );
    assert_eq!(
        a.level, 0,
        "the level lapsed a window after the lock lifted"
    );
}

/// A failure that depends on the challenge: `Failed` writes nothing and reports a challenge
/// taken meanwhile; so does `Lock`, which then locks nothing.
pub async fn failure_on_a_gone_challenge_is_not_charged<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, None).await;
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let failed = |outcome| Settlement {
        challenge: Some(&k.challenge),
        user: &k.user,
        limits: limits(),
        outcome,
    };
    assert_eq!(
        store
            .settle(&failed(Outcome::Failed), at(T0))
            .await
            .unwrap(),
        Settled::Done
    );
    let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_eq!(state.failures, 1, "the failure stands, counted once");
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    assert_eq!(
        store.settle(&pass(&k, None), at(T0)).await.unwrap(),
        Settled::Done
    );
    assert_eq!(
        store
            .settle(&failed(Outcome::Failed), at(T0))
            .await
            .unwrap(),
        Settled::ChallengeGone
    );
    let lock = Outcome::Lock {
        until: at(T0 + 900),
        level: 1,
    };
    assert_eq!(
        store.settle(&failed(lock), at(T0)).await.unwrap(),
        Settled::ChallengeGone
    );
    let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_eq!((state.failures, state.locked_until), (0, Timestamp::EPOCH));
}
