//! Sealed TOTP secrets: bound to their user and key id, tamper-evident, and rotatable.

use twofactor::LoginContext;

use twofactor::{
    clock::Timestamp, store::EnrollmentStore, testing::ManualClock, Error, Keyring, Method, Policy,
    TwoFactorService,
};

use crate::support::Harness;

#[tokio::test]
async fn a_sealed_secret_moved_to_another_user_does_not_open() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    h.enroll_totp("mallory").await;
    // Copy alice's record over mallory's: mallory now holds alice's envelope.
    let (alice, _) = h.enrollments.load("alice").await.unwrap().unwrap();
    let (_, rev) = h.enrollments.load("mallory").await.unwrap().unwrap();
    h.enrollments
        .save("mallory", &alice, Some(rev))
        .await
        .unwrap()
        .unwrap();
    let ch = h.challenge("mallory").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await,
        Err(Error::Crypto)
    ));
}

#[tokio::test]
async fn every_flipped_byte_of_the_envelope_is_refused() {
    // Each refused envelope counts as a failed attempt: allow enough of them.
    let mut policy = Policy::default();
    policy.lockout_threshold = 100;
    let h = Harness::with_policy(policy.dangerous_allow_over_100_failures_per_day());
    let (secret, _) = h.enroll_totp("alice").await;
    let (original, _) = h.enrollments.load("alice").await.unwrap().unwrap();
    let envelope = original.totp.as_ref().unwrap().sealed_secret.clone();
    // version (1) + key id (4) + nonce (24) + ciphertext (20) + tag (16)
    assert_eq!(envelope.len(), 1 + 4 + 24 + 20 + 16);
    for i in 0..envelope.len() {
        let mut rec = original.clone();
        rec.totp.as_mut().unwrap().sealed_secret[i] ^= 0x01;
        let (_, rev) = h.enrollments.load("alice").await.unwrap().unwrap();
        h.enrollments
            .save("alice", &rec, Some(rev))
            .await
            .unwrap()
            .unwrap();
        h.advance(30);
        let ch = h.challenge("alice").await;
        let r =
            h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
                .await;
        assert!(matches!(r, Err(Error::Crypto)), "byte {i}: {r:?}");
    }
    // Truncated envelopes too.
    for len in [0, 1, 5, 29, 44] {
        let mut rec = original.clone();
        rec.totp.as_mut().unwrap().sealed_secret.truncate(len);
        let (_, rev) = h.enrollments.load("alice").await.unwrap().unwrap();
        h.enrollments.save("alice", &rec, Some(rev)).await.unwrap();
        h.advance(30);
        let ch = h.challenge("alice").await;
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
                .await,
            Err(Error::Crypto)
        ));
    }
}

/// Another service on the harness's stores, with `keys` and `clock`.
fn service_over(h: &Harness, keys: Keyring, clock: ManualClock) -> TwoFactorService {
    h.like().keys(keys).clock(clock).build().tf
}

#[tokio::test]
async fn rotation_keeps_old_secrets_working_and_reseals_them() {
    let old = Keyring::generate();
    let h = Harness::with(Policy::default(), old.clone());
    let (secret, _) = h.enroll_totp("alice").await;
    let new = Keyring::generate();
    let clock = ManualClock::new(Timestamp::from_unix_secs(h.now()));

    // The new key alone cannot open the old envelope, and its service cannot even find the
    // old challenge keys (they are keyed too), so test by a fresh login on each service.
    let new_only = service_over(&h, new.clone(), clock.clone());
    let twofactor::LoginStep::Challenge(ch) = new_only
        .begin_login(LoginContext::none(), "alice")
        .await
        .unwrap()
    else {
        panic!("enrolled user gets a challenge");
    };
    clock.advance(std::time::Duration::from_secs(30));
    let code = h.totp_at(&secret, clock.now_secs());
    assert!(matches!(
        new_only
            .verify_login(LoginContext::none(), ch.token(), &code)
            .await,
        Err(Error::Crypto)
    ));

    // The rotated keyring opens it, and re-seals it under the new key.
    let rotated = service_over(&h, old.rotate_to(&new), clock.clone());
    clock.advance(std::time::Duration::from_secs(30));
    let twofactor::LoginStep::Challenge(ch) = rotated
        .begin_login(LoginContext::none(), "alice")
        .await
        .unwrap()
    else {
        panic!("enrolled user gets a challenge");
    };
    let code = h.totp_at(&secret, clock.now_secs());
    let v = rotated
        .verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
    let (rec, _) = h.enrollments.load("alice").await.unwrap().unwrap();
    let env = &rec.totp.unwrap().sealed_secret;
    let key_id: String = env[1..5].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_id, new.key_id());

    // Now the new key alone opens it.
    clock.advance(std::time::Duration::from_secs(30));
    let twofactor::LoginStep::Challenge(ch) = new_only
        .begin_login(LoginContext::none(), "alice")
        .await
        .unwrap()
    else {
        panic!("enrolled user gets a challenge");
    };
    let code = h.totp_at(&secret, clock.now_secs());
    new_only
        .verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();
}

#[test]
fn keyring_parsing_and_debug() {
    let b64 = Keyring::generate_base64();
    let k = Keyring::from_base64(&b64).unwrap();
    assert_eq!(Keyring::from_base64(&b64).unwrap().key_id(), k.key_id());
    assert_eq!(k.key_id().len(), 8);
    let dbg = format!("{k:?}");
    assert!(dbg.contains(&k.key_id()));
    assert!(!dbg.contains(&b64));
    for bad in ["", "not base64!", "AAAA", &"A".repeat(100)] {
        let e = Keyring::from_base64(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)));
        assert!(bad.is_empty() || !e.to_string().contains(bad));
    }
}

trait NowSecs {
    fn now_secs(&self) -> u64;
}

impl NowSecs for ManualClock {
    fn now_secs(&self) -> u64 {
        use twofactor::clock::Clock;
        self.now().as_unix_secs()
    }
}
