//! Conformance bodies for [`EnrollmentStore`].

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

/// `load_with_codes` gives the record with the count of unused codes; `redeem_backup_code`
/// consumes a code once and says how many remain.
pub async fn load_with_codes_and_redeem<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    let u = user();
    assert_eq!(store.load_with_codes(&u).await.unwrap(), (None, 0));
    let set = codes(6, 5);
    store.replace_backup_codes(&u, &set, at(T0)).await.unwrap();
    assert_eq!(
        store.load_with_codes(&u).await.unwrap(),
        (None, 5),
        "codes without a record"
    );
    let rev = store.save(&u, &record(1), None).await.unwrap().unwrap();
    assert_eq!(
        store.load_with_codes(&u).await.unwrap(),
        (Some((record(1), rev)), 5)
    );
    assert_eq!(
        store
            .redeem_backup_code(&u, &set[2].lookup, at(T0 + 1))
            .await
            .unwrap(),
        Some(4)
    );
    assert_eq!(
        store
            .redeem_backup_code(&u, &set[2].lookup, at(T0 + 2))
            .await
            .unwrap(),
        None,
        "a code is redeemed once"
    );
    assert_eq!(
        store.find_backup_code(&u, &set[2].lookup).await.unwrap(),
        None
    );
    let mut wrong = set[0].lookup.clone();
    wrong[0] ^= 1;
    assert_eq!(
        store
            .redeem_backup_code(&u, &wrong, at(T0 + 2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_backup_code(&user(), &set[0].lookup, at(T0 + 2))
            .await
            .unwrap(),
        None,
        "another user's code"
    );
    assert!(store
        .consume_backup_code(&u, &set[0].lookup, at(T0 + 3))
        .await
        .unwrap());
    assert_eq!(
        store
            .redeem_backup_code(&u, &set[0].lookup, at(T0 + 4))
            .await
            .unwrap(),
        None,
        "consumed before"
    );
    assert_eq!(
        store.load_with_codes(&u).await.unwrap(),
        (Some((record(1), rev)), 3)
    );
    store.remove(&u).await.unwrap();
    assert_eq!(store.load_with_codes(&u).await.unwrap(), (None, 0));
    assert_eq!(
        store
            .redeem_backup_code(&u, &set[1].lookup, at(T0 + 5))
            .await
            .unwrap(),
        None,
        "removed with the user"
    );
}

/// Of 32 concurrent redemptions of one code, exactly one succeeds, and it counts the others.
pub async fn redeem_concurrent_exactly_one<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    let u = user();
    let set = codes(8, 10);
    store.replace_backup_codes(&u, &set, at(T0)).await.unwrap();
    for (n, c) in set[..3].iter().enumerate() {
        let redeemed = concurrently(32, |_| {
            let (store, u, lookup) = (store.clone(), u.clone(), c.lookup.clone());
            async move { store.redeem_backup_code(&u, &lookup, at(T0)).await.unwrap() }
        })
        .await;
        let won: Vec<u32> = redeemed.into_iter().flatten().collect();
        assert_eq!(
            won,
            vec![9 - n as u32],
            "exactly one of 32 concurrent redemptions"
        );
    }
    assert_eq!(store.backup_codes_remaining(&u).await.unwrap(), 7);
}

/// Trusted devices ride in the record: they load back equal (label, times, keyed hash), a
/// compare-and-swap updates one device's last use, a stale writer cannot bring a revoked device
/// back, and `remove` drops them with the record.
pub async fn trusted_devices_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    use crate::store::TrustedDeviceRecord;
    let u = user();
    let mut r = record(3);
    for i in 0..3u8 {
        r.trusted_devices.push(TrustedDeviceRecord::new(
            format!("device-{i}"),
            vec![i; 32],
            format!("Browser {i} «ünïcode» \"quoted\""),
            at(T0 + u64::from(i)),
            at(T0 + 30 * 86_400),
        ));
    }
    let rev1 = store.save(&u, &r, None).await.unwrap().expect("first save");
    assert_eq!(store.load(&u).await.unwrap(), Some((r.clone(), rev1)));

    let mut used = r.clone();
    used.trusted_devices[1].last_used_at = Some(at(T0 + 100));
    let rev2 = store
        .save(&u, &used, Some(rev1))
        .await
        .unwrap()
        .expect("last use recorded");
    assert_eq!(store.load(&u).await.unwrap(), Some((used.clone(), rev2)));

    let mut revoked = used.clone();
    revoked.trusted_devices.clear();
    let rev3 = store
        .save(&u, &revoked, Some(rev2))
        .await
        .unwrap()
        .expect("revoked");
    // A writer that loaded the record before the revocation cannot restore the devices.
    assert_eq!(store.save(&u, &used, Some(rev2)).await.unwrap(), None);
    let (loaded, _) = store.load(&u).await.unwrap().unwrap();
    assert!(loaded.trusted_devices.is_empty());

    store.save(&u, &r, Some(rev3)).await.unwrap().unwrap();
    store.remove(&u).await.unwrap();
    assert_eq!(store.load(&u).await.unwrap(), None);
    let rev = store
        .save(&u, &record(4), None)
        .await
        .unwrap()
        .expect("enrol again");
    let (again, rev_again) = store.load(&u).await.unwrap().unwrap();
    assert_eq!(rev_again, rev);
    assert!(
        again.trusted_devices.is_empty(),
        "devices died with the removal"
    );
}

/// A pending account recovery rides in the record: it loads back equal, and clearing it by
/// compare-and-swap is not undone by a writer holding the older revision.
pub async fn recovery_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    use crate::store::RecoveryRecord;
    let u = user();
    let mut r = record(5);
    let mut pending = RecoveryRecord::new(at(T0), at(T0 + 72 * 3600));
    pending.reminded_at = Some(at(T0 + 48 * 3600));
    r.recovery = Some(pending);
    let rev1 = store.save(&u, &r, None).await.unwrap().expect("first save");
    assert_eq!(store.load(&u).await.unwrap(), Some((r.clone(), rev1)));
    let mut cancelled = r.clone();
    cancelled.recovery = None;
    let rev2 = store
        .save(&u, &cancelled, Some(rev1))
        .await
        .unwrap()
        .expect("cancelled");
    assert_eq!(store.save(&u, &r, Some(rev1)).await.unwrap(), None);
    assert_eq!(store.load(&u).await.unwrap(), Some((cancelled, rev2)));
}

/// A proven phone rides in the record: it loads back equal (whole, not masked), a record
/// without one loads without one, and removing it by compare-and-swap holds.
pub async fn phone_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    use crate::phone::PhoneNumber;
    use crate::store::PhoneRecord;
    let u = user();
    let without = record(6);
    let rev0 = store
        .save(&u, &without, None)
        .await
        .unwrap()
        .expect("saved");
    let (loaded, _) = store.load(&u).await.unwrap().expect("loaded");
    assert_eq!(loaded.phone, None, "no phone in a record saved without one");
    let mut r = without.clone();
    let number = PhoneNumber::parse("+491701234567").expect("a number");
    r.phone = Some(PhoneRecord::new(number.clone(), at(T0 + 9)));
    let rev1 = store
        .save(&u, &r, Some(rev0))
        .await
        .unwrap()
        .expect("phone added");
    let (loaded, rev) = store.load(&u).await.unwrap().expect("loaded");
    assert_eq!((&loaded, rev), (&r, rev1));
    assert_eq!(
        loaded.phone.as_ref().map(|p| p.number.as_e164()),
        Some("+491701234567")
    );
    let mut removed = r.clone();
    removed.phone = None;
    let rev2 = store
        .save(&u, &removed, Some(rev1))
        .await
        .unwrap()
        .expect("phone removed");
    assert_eq!(store.save(&u, &r, Some(rev1)).await.unwrap(), None);
    assert_eq!(store.load(&u).await.unwrap(), Some((removed, rev2)));
}

/// A security key's credential as `webauthn-rs` writes it (a software ES256 key's, 550 bytes
/// with a 22-character credential id), with credential id `id` and signature counter `counter`.
fn credential_json(id: &str, counter: u32) -> String {
    assert_eq!(id.len(), 22, "a credential id of 16 bytes, base64url");
    concat!(
        r#"{"cred":{"cred_id":"CRED_ID","cred":{"type_":"ES256","key":{"EC_EC2":{"#,
        r#""curve":"SECP256R1","x":"vDgToUyc2t5MSypD3HtxsocElejuTKPcq59mNsDs_RI","#,
        r#""y":"25gy1BdyTGoQA41zjwmD1n1bD_SdfDQQp259JWKpAA8"}}},"counter":COUNTER,"#,
        r#""transports":null,"user_verified":true,"backup_eligible":true,"backup_state":true,"#,
        r#""registration_policy":"preferred","extensions":{"cred_protect":"Ignored","#,
        r#""hmac_create_secret":"NotRequested","appid":"NotRequested","#,
        r#""cred_props":{"Unsigned":{"rk":true}}},"attestation":{"data":"None","#,
        r#""metadata":"None"},"attestation_format":"none"}}"#,
    )
    .replace("CRED_ID", id)
    .replace("COUNTER", &counter.to_string())
}

/// Security keys ride in the record: several load back equal (credential JSON, label, counter,
/// times, last ceremony); a compare-and-swap records one key's use, and a writer holding the
/// older revision can neither roll its counter back nor restore a removed key; a record as
/// written before keys existed (no field) loads with none, and one without keys is written so.
pub async fn security_keys_round_trip<S: EnrollmentStore + ?Sized>(store: Arc<S>) {
    use crate::store::SecurityKeyRecord;
    let u = user();
    let mut r = record(7);
    let ids = [
        "CBLBXk3mR8htlVdQLSINTA",
        "4qS10FqqDYBn4BPNvz8dHg",
        "P_FyIhd38bRnY4CmvmVklw",
    ];
    for (i, id) in ids.iter().enumerate() {
        let n = i as u64;
        let mut k = SecurityKeyRecord::new(
            format!("sk_{id:.16}"),
            format!("Key {i} «Büro» \"blue\" \\ 🔑"),
            credential_json(id, 5 * i as u32),
            at(T0 + n),
        );
        k.counter = 5 * i as u32;
        if i > 0 {
            k.last_used_at = Some(at(T0 + 60 + n));
            k.last_ceremony = Some(format!("ceremony-tag-{i}"));
        }
        r.security_keys.push(k);
    }
    assert!(r.security_keys.iter().all(|k| k.credential.len() >= 550));
    let rev1 = store.save(&u, &r, None).await.unwrap().expect("first save");
    assert_eq!(store.load(&u).await.unwrap(), Some((r.clone(), rev1)));

    // A login with the second key: its credential, counter, last use and ceremony change.
    let mut used = r.clone();
    let k = &mut used.security_keys[1];
    k.credential = credential_json(ids[1], 6);
    k.counter = 6;
    k.last_used_at = Some(at(T0 + 500));
    k.last_ceremony = Some("ceremony-tag-next".to_owned());
    let rev2 = store
        .save(&u, &used, Some(rev1))
        .await
        .unwrap()
        .expect("use recorded");
    assert_eq!(store.load(&u).await.unwrap(), Some((used.clone(), rev2)));
    // A writer that loaded before that use cannot put the lower counter back.
    assert_eq!(store.save(&u, &r, Some(rev1)).await.unwrap(), None);
    let (loaded, _) = store.load(&u).await.unwrap().unwrap();
    assert_eq!(loaded.security_keys[1].counter, 6);

    // The first key removed: a writer holding the revision from before cannot restore it.
    let mut removed = used.clone();
    removed.security_keys.remove(0);
    let rev3 = store
        .save(&u, &removed, Some(rev2))
        .await
        .unwrap()
        .expect("removed");
    assert_eq!(store.save(&u, &used, Some(rev2)).await.unwrap(), None);
    assert_eq!(store.load(&u).await.unwrap(), Some((removed.clone(), rev3)));

    // Every key removed: written without the field, as before keys existed, and loaded so.
    let mut none = removed.clone();
    none.security_keys.clear();
    let json = serde_json::to_string(&none).unwrap();
    assert!(!json.contains("security_keys"), "{json}");
    let rev4 = store
        .save(&u, &none, Some(rev3))
        .await
        .unwrap()
        .expect("all removed");
    assert_eq!(store.load(&u).await.unwrap(), Some((none, rev4)));

    // A record as an older release wrote it, without the field, loads with no keys.
    let old = r#"{"version":1,"totp":null,"pending_totp":null,
        "email":{"address":"old@example.com","verified_at":1700000002},
        "last_verified_at":1700000009}"#;
    let old: EnrollmentRecord = serde_json::from_str(old).unwrap();
    let other = user();
    let rev = store
        .save(&other, &old, None)
        .await
        .unwrap()
        .expect("saved");
    let (loaded, loaded_rev) = store.load(&other).await.unwrap().expect("loaded");
    assert_eq!((&loaded, loaded_rev), (&old, rev));
    assert!(loaded.security_keys.is_empty());
    assert!(loaded.is_enabled(), "the email factor is kept");
}
