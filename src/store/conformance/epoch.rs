//! Conformance bodies for the user's epoch (see [`flow`](crate::store::flow)): a change of
//! the user's factors, or a lock, ends the challenges begun before it, in the same atomic step
//! that opens or settles an attempt.

use std::time::Duration;

use super::flow::{attempt, create, keys, limits, opened, pass, Keys, T0};
use super::*;
use crate::store::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Outcome, Reserved, SendSpec, Settled, Settlement,
    UserLimits,
};

fn settle_lock<'a>(k: &'a Keys, challenge: Option<&'a StoreKey>, until: u64) -> Settlement<'a> {
    Settlement {
        challenge,
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Lock {
            until: at(until),
            level: 1,
        },
    }
}

/// `end_challenges` ends every challenge begun before it: one cannot be opened (nothing is
/// counted), one already opened cannot be passed, and no code is sent for it; a challenge
/// begun after it works. It creates the user's record when there is none, and each call moves
/// the epoch on.
pub async fn end_challenges_ends_the_challenges_begun_before<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, Some(b"c")).await;
    // A second challenge with an attempt opened before the end, settled after it.
    let opened_key = StoreKey::new(format!("{}:c:2", k.user.as_str()));
    let new = NewChallenge {
        user: &k.user,
        limits: limits(),
        challenge: &opened_key,
        value: b"v2",
        expires_at: at(T0 + 300),
        send: None,
        send_required: false,
    };
    assert_eq!(
        store.begin_challenge(&new, at(T0)).await.unwrap(),
        Begun::Created { send: None }
    );
    let on_opened = AttemptSpec {
        challenge: Some((&opened_key, 5)),
        user: &k.user,
        limits: limits(),
    };
    opened(store.open_attempt(&on_opened, at(T0)).await.unwrap());
    let before = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    let epoch = store
        .end_challenges(&k.user, &limits(), at(T0 + 1))
        .await
        .unwrap();
    assert_ne!(epoch, before.epoch, "the epoch moved on");
    let state = store
        .user_state(&k.user, &limits(), at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(state.epoch, epoch);
    assert_eq!(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 1))
            .await
            .unwrap(),
        Opened::NoChallenge,
        "a challenge begun before cannot be opened"
    );
    let pass_opened = Settlement {
        challenge: Some(&opened_key),
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Passed { totp_step: Some(5) },
    };
    assert_eq!(
        store.settle(&pass_opened, at(T0 + 1)).await.unwrap(),
        Settled::ChallengeGone,
        "an attempt opened before cannot pass after"
    );
    assert_eq!(
        store.settle(&pass(&k, None), at(T0 + 1)).await.unwrap(),
        Settled::ChallengeGone
    );
    let state = store
        .user_state(&k.user, &limits(), at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        (state.failures, state.last_step, state.last_verified_at),
        (1, None, None),
        "nothing counted, nothing recorded"
    );
    let spec = SendSpec::new(&k.cooldown, at(T0 + 200), 3, Duration::from_secs(900));
    assert_eq!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &spec, at(T0 + 100))
            .await
            .unwrap(),
        Reserved::NoChallenge,
        "no code is sent for an ended challenge"
    );
    // A challenge begun after the end works.
    let k2 = Keys {
        user: k.user.clone(),
        challenge: StoreKey::new(format!("{}:c:3", k.user.as_str())),
        cooldown: StoreKey::new(format!("{}:c:3:cool", k.user.as_str())),
    };
    assert_eq!(
        create(&*store, &k2, None).await,
        Begun::Created { send: None }
    );
    let a = opened(
        store
            .open_attempt(&attempt(&k2, 5), at(T0 + 2))
            .await
            .unwrap(),
    );
    assert_eq!(a.challenge.unwrap().epoch, Some(epoch));
    assert_eq!(
        store.settle(&pass(&k2, Some(9)), at(T0 + 2)).await.unwrap(),
        Settled::Done
    );
    let again = store
        .end_challenges(&k.user, &limits(), at(T0 + 3))
        .await
        .unwrap();
    assert_ne!(again, epoch, "every call moves the epoch on");
    // A user with no record gets one.
    let fresh = keys();
    let epoch = store
        .end_challenges(&fresh.user, &limits(), at(T0))
        .await
        .unwrap();
    let state = store
        .user_state(&fresh.user, &limits(), at(T0 + 86_400))
        .await
        .unwrap();
    assert_eq!(state.epoch, epoch, "kept as the limits say");
    assert_ne!(epoch, 0);
}

/// A lock ends the challenges begun before it: once it lifts, a challenge that still had
/// attempts left and has not lapsed cannot be opened or passed (Keycloak #26177); one begun
/// after works. A lock on a challenge that is gone sets nothing and ends nothing.
pub async fn a_lock_ends_the_challenges_begun_before<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    create(&*store, &k, None).await;
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let before = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    // The lock is set by an attempt on another challenge of the user.
    let other = Keys {
        user: k.user.clone(),
        challenge: StoreKey::new(format!("{}:c:2", k.user.as_str())),
        cooldown: StoreKey::new(format!("{}:c:2:cool", k.user.as_str())),
    };
    create(&*store, &other, None).await;
    opened(
        store
            .open_attempt(&attempt(&other, 5), at(T0))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .settle(
                &settle_lock(&other, Some(&other.challenge), T0 + 60),
                at(T0)
            )
            .await
            .unwrap(),
        Settled::Done
    );
    let locked = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_ne!(locked.epoch, before.epoch, "a lock moves the epoch on");
    assert_eq!(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 61))
            .await
            .unwrap(),
        Opened::NoChallenge,
        "after the lock lifts, a challenge begun before it is dead"
    );
    assert_eq!(
        store.settle(&pass(&k, None), at(T0 + 61)).await.unwrap(),
        Settled::ChallengeGone
    );
    let fresh = Keys {
        user: k.user.clone(),
        challenge: StoreKey::new(format!("{}:c:3", k.user.as_str())),
        cooldown: StoreKey::new(format!("{}:c:3:cool", k.user.as_str())),
    };
    let new = NewChallenge {
        user: &fresh.user,
        limits: limits(),
        challenge: &fresh.challenge,
        value: b"after",
        expires_at: at(T0 + 400),
        send: None,
        send_required: false,
    };
    assert_eq!(
        store.begin_challenge(&new, at(T0 + 61)).await.unwrap(),
        Begun::Created { send: None }
    );
    opened(
        store
            .open_attempt(&attempt(&fresh, 5), at(T0 + 62))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .settle(&pass(&fresh, None), at(T0 + 62))
            .await
            .unwrap(),
        Settled::Done
    );
    // A lock with no challenge named ends them too.
    let last = Keys {
        user: k.user.clone(),
        challenge: StoreKey::new(format!("{}:c:4", k.user.as_str())),
        cooldown: StoreKey::new(format!("{}:c:4:cool", k.user.as_str())),
    };
    let new = NewChallenge {
        challenge: &last.challenge,
        ..new
    };
    store.begin_challenge(&new, at(T0 + 62)).await.unwrap();
    store
        .settle(&settle_lock(&k, None, T0 + 70), at(T0 + 62))
        .await
        .unwrap();
    assert_eq!(
        store
            .open_attempt(&attempt(&last, 5), at(T0 + 71))
            .await
            .unwrap(),
        Opened::NoChallenge
    );
    // A lock on a challenge taken meanwhile sets nothing, and ends nothing.
    let epoch = store
        .user_state(&k.user, &limits(), at(T0 + 71))
        .await
        .unwrap()
        .epoch;
    assert_eq!(
        store
            .settle(
                &settle_lock(&k, Some(&fresh.challenge), T0 + 900),
                at(T0 + 71)
            )
            .await
            .unwrap(),
        Settled::ChallengeGone
    );
    let state = store
        .user_state(&k.user, &limits(), at(T0 + 71))
        .await
        .unwrap();
    assert_eq!((state.epoch, state.locked_until), (epoch, at(T0 + 70)));
}

/// The epoch lives in the user's record: the other operations keep it, and a challenge begun
/// in it keeps working through them. A pending code made by `store_code` is bound to no epoch.
pub async fn epochs_survive_in_the_user_record<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    let epoch = store
        .end_challenges(&k.user, &limits(), at(T0))
        .await
        .unwrap();
    // A send, an attempt that fails and stands, a resend and a pass: each writes the record.
    assert_eq!(
        create(&*store, &k, Some(b"c1")).await,
        Begun::Created { send: Some(Ok(())) }
    );
    opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let failed = Settlement {
        challenge: Some(&k.challenge),
        user: &k.user,
        limits: limits(),
        outcome: Outcome::Failed,
    };
    assert_eq!(store.settle(&failed, at(T0)).await.unwrap(), Settled::Done);
    let spec = SendSpec::new(&k.cooldown, at(T0 + 120), 3, Duration::from_secs(900));
    assert!(matches!(
        store
            .reserve_send(&k.user, Some(&k.challenge), &spec, at(T0 + 60))
            .await
            .unwrap(),
        Reserved::Granted(Some(_))
    ));
    let a = opened(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 61))
            .await
            .unwrap(),
    );
    assert_eq!((a.attempts, a.challenge.unwrap().epoch), (2, Some(epoch)));
    assert_eq!(
        store.settle(&pass(&k, Some(3)), at(T0 + 61)).await.unwrap(),
        Settled::Done
    );
    let state = store
        .user_state(&k.user, &limits(), at(T0 + 61))
        .await
        .unwrap();
    assert_eq!(state.epoch, epoch, "kept through every write");
    assert_eq!(state.last_step, Some(3));
    // A pending code: not ended by the epoch.
    let pending = StoreKey::new(format!("{}:pending", k.user.as_str()));
    assert!(store
        .store_code(&pending, Some((b"to", at(T0 + 300))), b"p", at(T0 + 61))
        .await
        .unwrap());
    store
        .end_challenges(&k.user, &limits(), at(T0 + 62))
        .await
        .unwrap();
    let on_pending = AttemptSpec {
        challenge: Some((&pending, 5)),
        user: &k.user,
        limits: limits(),
    };
    let a = opened(store.open_attempt(&on_pending, at(T0 + 62)).await.unwrap());
    assert_eq!(a.challenge.unwrap().epoch, None);
}

/// Records of the default layout written before epochs existed, on the store's primitives: a
/// version-1 user record reads with epoch 0, and a challenge record of the earlier form reads
/// as begun in epoch 0 (so it stands until the epoch moves on).
pub async fn earlier_default_records_read_as_epoch_0<S: OtpStore + ?Sized>(store: Arc<S>) {
    let store = PrimitivesOnly(store);
    let k = keys();
    let user = crate::store::flow::UserState {
        failures: 2,
        failures_until: at(T0 + 600),
        last_verified_at: Some(at(T0 - 50)),
        ..Default::default()
    };
    let mut v1 = user.to_bytes()[..crate::store::flow::USER_STATE_V1_LEN].to_vec();
    v1[0] = 1;
    v1.extend_from_slice(&0u64.to_be_bytes());
    store
        .put(&k.user, &v1, at(T0 + 86_400), at(T0))
        .await
        .unwrap();
    let read = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
    assert_eq!((read.epoch, read.last_verified_at), (0, Some(at(T0 - 50))));
    let mut earlier = (T0 + 300).to_be_bytes().to_vec();
    earlier.extend_from_slice(b"earlier value");
    store
        .put(&k.challenge, &earlier, at(T0 + 300), at(T0))
        .await
        .unwrap();
    let a = opened(store.open_attempt(&attempt(&k, 5), at(T0)).await.unwrap());
    let ch = a.challenge.unwrap();
    assert_eq!(
        (ch.value.as_slice(), ch.epoch),
        (&b"earlier value"[..], Some(0))
    );
    store
        .end_challenges(&k.user, &limits(), at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        store
            .open_attempt(&attempt(&k, 5), at(T0 + 1))
            .await
            .unwrap(),
        Opened::NoChallenge
    );
}

/// A user record whose epoch is not 0 outlives the challenges stamped with it, whatever the
/// retention: were it to lapse (reading as epoch 0), the next `end_challenges` could bring the
/// epoch back to a challenge still live.
pub async fn a_lapsed_record_never_brings_a_challenge_back<S: OtpStore + ?Sized>(store: Arc<S>) {
    let k = keys();
    // Kept one minute after each write.
    let short = UserLimits::new(10, Duration::from_secs(60), Duration::from_secs(60));
    let first = store.end_challenges(&k.user, &short, at(T0)).await.unwrap();
    let new = NewChallenge {
        user: &k.user,
        limits: short,
        challenge: &k.challenge,
        value: b"v",
        expires_at: at(T0 + 600),
        send: None,
        send_required: false,
    };
    assert_eq!(
        store.begin_challenge(&new, at(T0 + 30)).await.unwrap(),
        Begun::Created { send: None }
    );
    // A write with the short retention does not shorten the record either.
    let spec = AttemptSpec {
        challenge: None,
        user: &k.user,
        limits: short,
    };
    opened(store.open_attempt(&spec, at(T0 + 40)).await.unwrap());
    let state = store
        .user_state(&k.user, &short, at(T0 + 300))
        .await
        .unwrap();
    assert_eq!(state.epoch, first, "the record outlives the challenge");
    let next = store
        .end_challenges(&k.user, &short, at(T0 + 300))
        .await
        .unwrap();
    assert_ne!(next, first);
    let on = AttemptSpec {
        challenge: Some((&k.challenge, 5)),
        user: &k.user,
        limits: short,
    };
    assert_eq!(
        store.open_attempt(&on, at(T0 + 301)).await.unwrap(),
        Opened::NoChallenge,
        "the challenge begun before the second end stays dead"
    );
}
