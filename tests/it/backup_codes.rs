//! Backup codes (seed 002): single use, forgiving input, regeneration, keyed storage.

use twofactor::LoginContext;
use twofactor::{account::BackupCodeHashing, mail::MessagePurpose, Error, Method, Policy};

use crate::support::{wrong, Harness};

#[tokio::test]
async fn a_backup_code_logs_in_once() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &codes[3])
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::BackupCode));
    assert_eq!(v.backup_codes_remaining(), 9);
    let ch = h.challenge("u1").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &codes[3])
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .backup_codes_remaining,
        9
    );
}

#[tokio::test]
async fn input_ignores_case_spaces_dashes_and_confusables() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("u1").await;
    let typed = [
        codes[0].to_lowercase(),
        codes[1].replace('-', " "),
        codes[2].replace('-', ""),
        codes[3].replace('1', "l").replace('0', "O"),
    ];
    for t in typed {
        let ch = h.challenge("u1").await;
        assert_eq!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &t)
                .await
                .unwrap()
                .method(),
            Some(Method::BackupCode),
            "{t}"
        );
    }
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .backup_codes_remaining,
        6
    );
}

#[tokio::test]
async fn a_backup_code_of_another_user_is_refused() {
    let h = Harness::new();
    let (_, mine) = h.enroll_totp("u1").await;
    h.enroll_totp("u2").await;
    let ch = h.challenge("u2").await;
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), &mine[0])
        .await
        .is_err());
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .backup_codes_remaining,
        10
    );
}

#[tokio::test]
async fn regeneration_needs_a_fresh_factor_and_voids_the_old_set() {
    let h = Harness::new();
    let (secret, old) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "alice@example.com").await;
    assert!(matches!(
        h.tf.backup_codes()
            .regenerate("u1", &wrong(&h.totp(&secret)))
            .await,
        Err(Error::InvalidCode { .. })
    ));
    let new =
        h.tf.backup_codes()
            .regenerate("u1", &h.totp(&secret))
            .await
            .unwrap();
    assert_eq!(new.len(), 10);
    assert_eq!(
        h.mailer.last_to("alice@example.com").unwrap().purpose,
        MessagePurpose::BackupCodesRegenerated
    );
    for code in &old {
        assert!(!new.iter().any(|n| n.expose() == code));
    }
    h.advance(30);
    let ch = h.challenge("u1").await;
    for code in old.iter().take(3) {
        assert!(h
            .tf
            .verify_login(LoginContext::none(), ch.token(), code)
            .await
            .is_err());
    }
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), new[0].expose())
            .await
            .unwrap();
    assert_eq!(v.backup_codes_remaining(), 9);
    // A backup code can itself authorise a regeneration (and is spent doing so).
    let newer =
        h.tf.backup_codes()
            .regenerate("u1", new[1].expose())
            .await
            .unwrap();
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .backup_codes_remaining,
        10
    );
    let ch = h.challenge("u1").await;
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), new[2].expose())
        .await
        .is_err());
    h.tf.verify_login(LoginContext::none(), ch.token(), newer[0].expose())
        .await
        .unwrap();
}

#[tokio::test]
async fn stored_codes_are_keyed_hashes() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("u1").await;
    let records = h.enrollments.backup_code_records("u1");
    assert_eq!(records.len(), 10);
    for r in &records {
        assert_eq!(r.lookup.len(), 32);
        assert!(r.verifier.is_none());
        for c in &codes {
            let plain = c.replace('-', "");
            assert!(!r.lookup.windows(12).any(|w| w == plain.as_bytes()));
        }
    }
}

#[tokio::test]
async fn argon2id_storage_works_with_a_lookup_prefix() {
    let mut policy = Policy::default();
    policy.backup_code_hashing = BackupCodeHashing::Argon2id;
    policy.backup_code_count = 3;
    let h = Harness::with_policy(policy);
    let (_, codes) = h.enroll_totp("u1").await;
    let records = h.enrollments.backup_code_records("u1");
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r.lookup.len(), 2, "a 16-bit prefix");
        assert!(r.verifier.as_deref().unwrap().starts_with("$argon2id$"));
    }
    let ch = h.challenge("u1").await;
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), "ABCD-EFGH-JKMN")
        .await
        .is_err());
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &codes[1])
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::BackupCode));
    assert_eq!(v.backup_codes_remaining(), 2);
    let ch = h.challenge("u1").await;
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), &codes[1])
        .await
        .is_err());
}
