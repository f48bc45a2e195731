//! The epoch in the native records: a user record and a challenge of version 1 (before the
//! epoch) read as epoch 0 and are written back in version 2.

use super::{at, keys, limits, query, raw_user, with_redis, T0};
use crate::store::flow::{AttemptSpec, Opened, UserState, USER_STATE_LEN};
use crate::store::OtpStore;

#[test]
fn version_1_records_read_as_epoch_0() {
    with_redis("version_1_records_read_as_epoch_0", |store| async move {
        let k = keys();
        let user = UserState {
            failures: 1,
            failures_until: at(T0 + 300),
            last_step: Some(77),
            ..UserState::default()
        };
        let mut v1 = user.to_bytes()[..crate::store::flow::USER_STATE_V1_LEN].to_vec();
        v1[0] = 1;
        v1.extend_from_slice(&(T0 + 3_600).to_be_bytes());
        let _: () = query(
            &store,
            redis::cmd("SET").arg(store.full_key(&k.user)).arg(v1),
        )
        .await;
        assert_eq!(
            store.user_state(&k.user, &limits(), at(T0)).await.unwrap(),
            user
        );
        // A challenge of version 1: expiry, attempts, a code of 1 byte, then the value.
        let mut ch = vec![1u8];
        ch.extend_from_slice(&(T0 + 300).to_be_bytes());
        ch.extend_from_slice(&2u32.to_be_bytes());
        ch.push(1);
        ch.extend_from_slice(&1u32.to_be_bytes());
        ch.extend_from_slice(b"cvalue");
        let _: () = query(
            &store,
            redis::cmd("SET").arg(store.full_key(&k.challenge)).arg(ch),
        )
        .await;
        let spec = AttemptSpec {
            challenge: Some((&k.challenge, 5)),
            user: &k.user,
            limits: limits(),
        };
        let Opened::Open(a) = store.open_attempt(&spec, at(T0)).await.unwrap() else {
            panic!("not opened");
        };
        let ch = a.challenge.unwrap();
        assert_eq!(
            (
                ch.value.as_slice(),
                ch.code.as_deref(),
                ch.attempts,
                ch.epoch
            ),
            (&b"value"[..], Some(&b"c"[..]), 3, Some(0))
        );
        let (written, _) = raw_user(&store, &k.user).await;
        assert_eq!((written.failures, written.epoch), (2, 0), "written back");
        let raw: Vec<u8> = query(&store, redis::cmd("GET").arg(store.full_key(&k.user))).await;
        assert_eq!((raw[0], raw.len()), (2, USER_STATE_LEN + 8), "in version 2");
        assert_eq!(
            store
                .end_challenges(&k.user, &limits(), at(T0 + 1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store.open_attempt(&spec, at(T0 + 1)).await.unwrap(),
            Opened::NoChallenge
        );
    });
}
