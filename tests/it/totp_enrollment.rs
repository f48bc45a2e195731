//! TOTP enrolment (seeds 002, 003): setup, confirmation, replacement, replay of the confirmation.

use twofactor::LoginContext;
use twofactor::{totp::TotpSecret, Error, LoginStep, Method};

use crate::support::{wrong, Harness};

#[tokio::test]
async fn setup_gives_a_160_bit_secret_uri_qr_and_backup_codes() {
    let h = Harness::new();
    let setup =
        h.tf.totp()
            .start_setup("u1", "alice smith@example.com")
            .await
            .unwrap();
    let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
    assert_eq!(secret.as_bytes().len(), 20);
    assert_eq!(setup.secret_base32().len(), 32);
    assert!(!setup.secret_base32().contains('='));
    let uri = setup.otpauth_uri();
    assert!(uri.starts_with("otpauth://totp/Acme:alice%20smith%40example.com?secret="));
    assert!(uri.contains(&format!("secret={}", setup.secret_base32())));
    assert!(uri.ends_with("&issuer=Acme&algorithm=SHA1&digits=6&period=30"));
    assert!(setup.qr_svg().unwrap().contains("<svg"));
    #[cfg(feature = "qr-png")]
    assert_eq!(&setup.qr_png().unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(setup.backup_codes().len(), 10);
    // Debug never shows the secret.
    assert!(!format!("{setup:?}").contains(setup.secret_base32()));
}

#[tokio::test]
async fn totp_is_not_enabled_until_confirmed() {
    let h = Harness::new();
    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    // Before confirmation, a login does not ask for TOTP.
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await.unwrap(),
        LoginStep::Complete(_)
    ));
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled && status.totp_pending);
    assert_eq!(status.backup_codes_remaining, 0);
    // The backup codes shown at setup do not work before confirmation either.
    assert_eq!(
        h.tf.backup_codes()
            .regenerate("u1", setup.backup_codes()[0].expose())
            .await
            .unwrap_err()
            .code(),
        "not_enrolled"
    );

    let code = h.totp(setup.secret_base32());
    assert!(matches!(
        h.tf.totp().confirm_setup("u1", &wrong(&code)).await,
        Err(Error::InvalidCode { .. })
    ));
    h.tf.totp().confirm_setup("u1", &code).await.unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.methods, vec![Method::Totp, Method::BackupCode]);
    assert_eq!(status.totp_confirmed_at.unwrap().as_unix_secs(), h.now());
    assert_eq!(status.backup_codes_remaining, 10);
    assert!(!status.totp_pending);
}

#[tokio::test]
async fn the_confirmation_code_cannot_be_replayed_at_login() {
    let h = Harness::new();
    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    let code = h.totp(setup.secret_base32());
    h.tf.totp().confirm_setup("u1", &code).await.unwrap();
    let ch = h.challenge("u1").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await,
        Err(Error::CodeReused)
    ));
    // The next step's code works.
    h.advance(30);
    let v =
        h.tf.verify_login(
            &LoginContext::new(),
            ch.token(),
            &h.totp(setup.secret_base32()),
        )
        .await
        .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
}

#[tokio::test]
async fn a_second_setup_replaces_an_unconfirmed_one() {
    let h = Harness::new();
    let first = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    let second = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    assert_ne!(first.secret_base32(), second.secret_base32());
    assert!(matches!(
        h.tf.totp()
            .confirm_setup("u1", &h.totp(first.secret_base32()))
            .await,
        Err(Error::InvalidCode { .. })
    ));
    h.tf.totp()
        .confirm_setup("u1", &h.totp(second.secret_base32()))
        .await
        .unwrap();
    // Only the second set of backup codes was installed.
    h.advance(30);
    let ch = h.challenge("u1").await;
    assert!(h
        .tf
        .verify_login(
            &LoginContext::new(),
            ch.token(),
            first.backup_codes()[0].expose()
        )
        .await
        .is_err());
    let v =
        h.tf.verify_login(
            &LoginContext::new(),
            ch.token(),
            second.backup_codes()[0].expose(),
        )
        .await
        .unwrap();
    assert_eq!(v.method(), Some(Method::BackupCode));
    assert_eq!(v.backup_codes_remaining(), 9);
}

#[tokio::test]
async fn setup_after_confirmation_is_refused_and_pending_setup_expires() {
    let h = Harness::new();
    h.enroll_totp("u1").await;
    assert!(matches!(
        h.tf.totp().start_setup("u1", "alice").await,
        Err(Error::AlreadyEnrolled)
    ));

    let setup = h.tf.totp().start_setup("u2", "bob").await.unwrap();
    h.advance(15 * 60);
    assert!(matches!(
        h.tf.totp()
            .confirm_setup("u2", &h.totp(setup.secret_base32()))
            .await,
        Err(Error::NothingPending)
    ));
    assert!(matches!(
        h.tf.totp().confirm_setup("u3", "123456").await,
        Err(Error::NothingPending)
    ));
}

#[tokio::test]
async fn the_active_secret_cannot_be_read_back() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!format!("{status:?}").contains(&secret));
    // Nor is it in the stores in clear.
    let raw = TotpSecret::from_base32(&secret).unwrap();
    let records = format!("{:?}", h.enrollments.backup_code_records("u1"));
    assert!(!records.contains(&secret));
    for (_, v) in h
        .otp
        .dump(twofactor::clock::Timestamp::from_unix_secs(h.now()))
    {
        assert!(!v.windows(raw.as_bytes().len()).any(|w| w == raw.as_bytes()));
    }
}

#[tokio::test]
async fn bad_account_names_are_typed_errors() {
    let h = Harness::new();
    for bad in ["", "a:b", &"x".repeat(300)] {
        assert_eq!(
            h.tf.totp().start_setup("u1", bad).await.unwrap_err().code(),
            "invalid_input"
        );
    }
    assert_eq!(
        h.tf.totp()
            .start_setup("", "alice")
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
}
