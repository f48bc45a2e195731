//! Records of another layout under a key: a primitive's record or a malformed one is refused as
//! corrupt; a record of the earlier hash layout is read and replaced.

use super::{at, keys, limits, query, raw_user, with_redis, T0};
use crate::error::StoreErrorKind;
use crate::store::flow::{AttemptSpec, Opened, Outcome, Settled, Settlement, UserState};
use crate::store::redis::record::{encode, TAG_BYTES};
use crate::store::{OtpStore, StoreKey};

#[test]
fn records_of_the_other_layout_are_corrupt() {
    with_redis(
        "records_of_the_other_layout_are_corrupt",
        |store| async move {
            let k = keys();
            store.put(&k.user, b"x", at(T0 + 60), at(T0)).await.unwrap();
            let e = store
                .user_state(&k.user, &limits(), at(T0))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Corrupt);
            store
                .store_code(&k.challenge, Some((b"v", at(T0 + 60))), b"c", at(T0))
                .await
                .unwrap();
            let e = store.get(&k.challenge, at(T0)).await.unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Corrupt);
            let spec = AttemptSpec {
                challenge: Some((&k.challenge, 3)),
                user: &k.cooldown,
                limits: limits(),
            };
            // A primitive's record, a cut or padded record, a bad version, a legacy hash
            // with a malformed field: each is refused, never read as some other state.
            let full: Vec<u8> =
                query(&store, redis::cmd("GET").arg(store.full_key(&k.challenge))).await;
            let mut bad_version = full.clone();
            bad_version[0] = 3;
            let mut bad_epoch = full.clone();
            bad_epoch[18] = 2;
            let mut long_code = full.clone();
            long_code[14..18].copy_from_slice(&1_000u32.to_be_bytes());
            for raw in [
                encode(at(T0 + 60), TAG_BYTES, b"v"),
                full[..17].to_vec(),
                bad_version,
                bad_epoch,
                long_code,
            ] {
                let _: () = query(
                    &store,
                    redis::cmd("SET").arg(store.full_key(&k.challenge)).arg(raw),
                )
                .await;
                let e = store.open_attempt(&spec, at(T0)).await.unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                assert!(e.to_string().contains("malformed challenge record"), "{e}");
            }
            // The user key holds a primitive's record (`put` above): every script refuses it.
            let failed = Settlement {
                challenge: None,
                user: &k.user,
                limits: limits(),
                outcome: Outcome::Failed,
            };
            let e = store.settle(&failed, at(T0)).await.unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Corrupt);
            let mut user_raw = UserState::default().to_bytes().to_vec();
            user_raw.extend_from_slice(&(T0 + 60).to_be_bytes());
            for (at_byte, value) in [(0, 3u8), (0, 1), (25, 2), (46, 7), (59, 0xff)] {
                let mut raw = user_raw.clone();
                raw[at_byte] = value;
                let _: () = query(
                    &store,
                    redis::cmd("SET").arg(store.full_key(&k.user)).arg(raw),
                )
                .await;
                let e = store
                    .user_state(&k.user, &limits(), at(T0))
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt, "byte {at_byte}");
            }
            let _: () = query(&store, redis::cmd("DEL").arg(store.full_key(&k.challenge))).await;
            let _: () = query(
                &store,
                redis::cmd("HSET")
                    .arg(store.full_key(&k.challenge))
                    .arg("e")
                    .arg(T0 + 60)
                    .arg("v")
                    .arg("v")
                    .arg("n")
                    .arg("many"),
            )
            .await;
            let e = store.open_attempt(&spec, at(T0)).await.unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Corrupt);
            assert!(e.to_string().contains("malformed challenge record"), "{e}");
        },
    );
}

/// Records of the earlier layout (hashes with one decimal field each) are read, so an
/// upgrade keeps the lock, the run of failures, the send budget, the last TOTP step and the
/// last verification; the next write replaces them in the new layout.
#[test]
fn records_of_the_earlier_hash_layout_are_read_and_replaced() {
    with_redis("records_of_the_earlier_hash_layout", |store| async move {
        let k = keys();
        let hset = |key: &StoreKey, fields: Vec<(&'static str, Vec<u8>)>| {
            let store = store.clone();
            let key = store.full_key(key);
            async move {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&key);
                for (name, value) in fields {
                    cmd.arg(name).arg(value);
                }
                let _: () = query(&store, &mut cmd).await;
                let _: () = query(&store, redis::cmd("EXPIRE").arg(&key).arg(7_200)).await;
            }
        };
        let num = |n: u64| n.to_string().into_bytes();
        // Locked until T0 + 900 at level 2, with four failures in the run, a last TOTP
        // step, two sends and a last verification.
        hset(
            &k.user,
            vec![
                ("expires_at", num(T0 + 5_000)),
                ("failures", num(4)),
                ("failures_until", num(T0 + 600)),
                ("level", num(2)),
                ("locked_until", num(T0 + 900)),
                ("last_step", num(56_666_666)),
                ("sends", num(2)),
                ("sends_until", num(T0 + 2_000)),
                ("last_verified_at", num(T0 - 100)),
            ],
        )
        .await;
        let legacy = UserState {
            failures: 4,
            failures_until: at(T0 + 600),
            level: 2,
            locked_until: at(T0 + 900),
            last_step: Some(56_666_666),
            sends: 2,
            sends_until: at(T0 + 2_000),
            last_verified_at: Some(at(T0 - 100)),
            epoch: 0,
        };
        assert_eq!(
            store.user_state(&k.user, &limits(), at(T0)).await.unwrap(),
            legacy
        );
        // A challenge opened before the upgrade, with its code and one attempt.
        hset(
            &k.challenge,
            vec![
                ("e", num(T0 + 3_000)),
                ("v", b"\x00value".to_vec()),
                ("c", b"code\xff".to_vec()),
                ("n", num(1)),
            ],
        )
        .await;
        let spec = AttemptSpec {
            challenge: Some((&k.challenge, 5)),
            user: &k.user,
            limits: limits(),
        };
        assert_eq!(
            store.open_attempt(&spec, at(T0)).await.unwrap(),
            Opened::Locked {
                until: Some(at(T0 + 900))
            },
            "the lock held in the old layout holds"
        );
        let Opened::Open(a) = store.open_attempt(&spec, at(T0 + 901)).await.unwrap() else {
            panic!("not opened after the lock");
        };
        let ch = a.challenge.unwrap();
        assert_eq!(
            (ch.value.as_slice(), ch.code.as_deref(), ch.attempts),
            (&b"\x00value"[..], Some(&b"code\xff"[..]), 2)
        );
        assert_eq!(
            (a.failures, a.level),
            (1, 2),
            "the run lapsed, the level did not"
        );
        // Both records were rewritten in the new layout, keeping what they held.
        let kind = |key: &StoreKey| {
            let key = store.full_key(key);
            let store = store.clone();
            async move { query::<String>(&store, redis::cmd("TYPE").arg(key)).await }
        };
        assert_eq!(kind(&k.user).await, "string");
        assert_eq!(kind(&k.challenge).await, "string");
        let (user, _) = raw_user(&store, &k.user).await;
        assert_eq!(
            (
                user.level,
                user.last_step,
                user.sends,
                user.last_verified_at
            ),
            (2, Some(56_666_666), 2, Some(at(T0 - 100)))
        );
        let replay = Settlement {
            challenge: Some(&k.challenge),
            user: &k.user,
            limits: limits(),
            outcome: Outcome::Passed {
                totp_step: Some(56_666_666),
            },
        };
        assert_eq!(
            store.settle(&replay, at(T0 + 902)).await.unwrap(),
            Settled::Replayed,
            "the last TOTP step of the old layout still refuses a replay"
        );
        // A legacy challenge without a code gets one; a legacy user with no optional
        // fields reads as such.
        let k2 = keys();
        hset(
            &k2.user,
            vec![
                ("expires_at", num(T0 + 5_000)),
                ("failures", num(0)),
                ("failures_until", num(0)),
                ("level", num(0)),
                ("locked_until", num(0)),
                ("sends", num(0)),
                ("sends_until", num(0)),
            ],
        )
        .await;
        assert_eq!(
            store.user_state(&k2.user, &limits(), at(T0)).await.unwrap(),
            UserState::default()
        );
        hset(
            &k2.challenge,
            vec![("e", num(T0 + 300)), ("v", b"v".to_vec()), ("n", num(0))],
        )
        .await;
        assert!(store
            .store_code(&k2.challenge, None, b"new", at(T0))
            .await
            .unwrap());
        let spec2 = AttemptSpec {
            challenge: Some((&k2.challenge, 5)),
            user: &k2.user,
            limits: limits(),
        };
        let Opened::Open(a) = store.open_attempt(&spec2, at(T0)).await.unwrap() else {
            panic!("not opened");
        };
        let ch = a.challenge.unwrap();
        assert_eq!((ch.code.as_deref(), ch.attempts), (Some(&b"new"[..]), 1));
    });
}
