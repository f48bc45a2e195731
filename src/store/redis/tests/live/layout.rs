//! The records the scripts write, their TTLs and the keys they touch, and the clamp of far times
//! and steps at 2^53 - 1.

use std::time::Duration;

use super::{at, keys, limits, pttl, query, raw_user, with_redis, T0};
use crate::clock::Timestamp;
use crate::store::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Outcome, SendSpec, Settled, Settlement, UserState,
};
use crate::store::redis::record::MAX_TTL_MS;
use crate::store::redis::scripts::LUA_MAX;
use crate::store::{OtpStore, StoreKey};

#[test]
fn records_ttls_and_keys() {
    with_redis("records_ttls_and_keys", |store| async move {
        let k = keys();
        let (value, code) = (&b"\x00value\xff"[..], &b"\xffcode\x00"[..]);
        let send = SendSpec::new(&k.cooldown, at(T0 + 60), 3, Duration::from_secs(900));
        let new = NewChallenge {
            user: &k.user,
            limits: limits(),
            challenge: &k.challenge,
            value,
            expires_at: at(T0 + 300),
            send: Some((send, code)),
            send_required: true,
        };
        assert_eq!(
            store.begin_challenge(&new, at(T0)).await.unwrap(),
            Begun::Created { send: Some(Ok(())) }
        );
        let mut all: Vec<String> = query(
            &store,
            redis::cmd("KEYS").arg(format!("{}*", store.prefix())),
        )
        .await;
        all.sort();
        let mut expected = vec![
            store.full_key(&k.user),
            store.full_key(&k.challenge),
            store.full_key(&k.cooldown),
        ];
        expected.sort();
        assert_eq!(all, expected, "only the keys passed in");
        let kind = |key: &StoreKey| {
            let key = store.full_key(key);
            let store = store.clone();
            async move { query::<String>(&store, redis::cmd("TYPE").arg(key)).await }
        };
        assert_eq!(kind(&k.user).await, "string");
        assert_eq!(kind(&k.challenge).await, "string");
        assert_eq!(kind(&k.cooldown).await, "string");
        let ch: Vec<u8> = query(&store, redis::cmd("GET").arg(store.full_key(&k.challenge))).await;
        let mut expected_ch = vec![2u8];
        expected_ch.extend_from_slice(&(T0 + 300).to_be_bytes());
        expected_ch.extend_from_slice(&0u32.to_be_bytes());
        expected_ch.push(1);
        expected_ch.extend_from_slice(&u32::try_from(code.len()).unwrap().to_be_bytes());
        // Stamped with the user's epoch (0: the user has no record yet).
        expected_ch.push(1);
        expected_ch.extend_from_slice(&0u32.to_be_bytes());
        expected_ch.extend_from_slice(code);
        expected_ch.extend_from_slice(value);
        assert_eq!(
            ch, expected_ch,
            "version, expiry, attempts, code, epoch, then the code and the value"
        );
        let cool: Vec<u8> = query(&store, redis::cmd("GET").arg(store.full_key(&k.cooldown))).await;
        assert_eq!(cool, b"1700000060");
        // TTLs: the lifetime plus the grace period (less the milliseconds since the write).
        let near = |ttl: i64, secs: i64| {
            let full = secs * 1_000 + 60_000;
            (full - 5_000..=full).contains(&ttl)
        };
        assert!(near(pttl(&store, &k.challenge).await, 300));
        assert!(near(pttl(&store, &k.cooldown).await, 60));
        assert!(near(pttl(&store, &k.user).await, 3_600), "kept `retention`");

        let spec = AttemptSpec {
            challenge: Some((&k.challenge, 3)),
            user: &k.user,
            limits: limits(),
        };
        let Opened::Open(a) = store.open_attempt(&spec, at(T0 + 1)).await.unwrap() else {
            panic!("not opened");
        };
        let ch = a.challenge.unwrap();
        assert_eq!(
            (ch.value.as_slice(), ch.code.as_deref()),
            (value, Some(code))
        );
        assert_eq!((a.attempts, ch.attempts, a.failures), (1, 1, 1));
        let pass = Settlement {
            challenge: Some(&k.challenge),
            user: &k.user,
            limits: limits(),
            outcome: Outcome::Passed { totp_step: None },
        };
        assert_eq!(
            store.settle(&pass, at(T0 + 2)).await.unwrap(),
            Settled::Done
        );
        let exists: i64 = query(
            &store,
            redis::cmd("EXISTS").arg(store.full_key(&k.challenge)),
        )
        .await;
        assert_eq!(exists, 0, "a pass deletes the challenge");
        let (user, expires_at) = raw_user(&store, &k.user).await;
        assert_eq!(
            user.last_verified_at,
            Some(at(T0 + 2)),
            "the user record is UserState::to_bytes, then its expiry"
        );
        assert_eq!((user.failures, user.sends, user.last_step), (0, 1, None));
        assert_eq!(expires_at, T0 + 2 + 3_600, "kept `retention`");
    });
}

#[test]
fn far_times_and_steps_clamp_at_two_to_the_53_minus_one() {
    with_redis("far_times_and_steps_clamp", |store| async move {
        let k = keys();
        let far = at(LUA_MAX);
        let new = NewChallenge {
            user: &k.user,
            limits: limits(),
            challenge: &k.challenge,
            value: b"v",
            expires_at: Timestamp::MAX,
            send: None,
            send_required: false,
        };
        assert_eq!(
            store.begin_challenge(&new, at(T0)).await.unwrap(),
            Begun::Created { send: None }
        );
        let ttl = pttl(&store, &k.challenge).await;
        assert!(ttl > 0 && ttl <= i64::try_from(MAX_TTL_MS).unwrap());
        let spec = AttemptSpec {
            challenge: Some((&k.challenge, 3)),
            user: &k.user,
            limits: limits(),
        };
        let Opened::Open(a) = store.open_attempt(&spec, at(T0)).await.unwrap() else {
            panic!("not opened");
        };
        assert_eq!(a.challenge.unwrap().expires_at, far);
        let pass = |step| Settlement {
            challenge: Some(&k.challenge),
            user: &k.user,
            limits: limits(),
            outcome: Outcome::Passed {
                totp_step: Some(step),
            },
        };
        assert_eq!(
            store.settle(&pass(u64::MAX), at(T0)).await.unwrap(),
            Settled::Done
        );
        let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
        assert_eq!(state.last_step, Some(LUA_MAX));
        store.begin_challenge(&new, at(T0)).await.unwrap();
        assert_eq!(
            store.settle(&pass(LUA_MAX + 1), at(T0)).await.unwrap(),
            Settled::Replayed,
            "steps past the clamp are one step"
        );
        let lock = Settlement {
            challenge: None,
            user: &k.user,
            limits: limits(),
            outcome: Outcome::Lock {
                until: Timestamp::MAX,
                level: 1,
            },
        };
        assert_eq!(store.settle(&lock, at(T0)).await.unwrap(), Settled::Done);
        let ttl = pttl(&store, &k.user).await;
        assert!(ttl > 0 && ttl <= i64::try_from(MAX_TTL_MS).unwrap());
        let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
        assert_eq!((state.locked_until, state.level), (far, 1));
        assert_eq!(
            store.open_attempt(&spec, at(T0)).await.unwrap(),
            Opened::Locked { until: Some(far) }
        );
        // The lock lapses at the clamped time, as the challenge does.
        let state = store
            .user_state(&k.user, &limits(), Timestamp::MAX)
            .await
            .unwrap();
        assert_eq!(state, UserState::default(), "the record lapsed");
    });
}
