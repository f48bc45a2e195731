//! A pending account recovery where it meets the other flows: a trusted device alone does not
//! outlast it, and the host is told of it at the login.

use twofactor::{account::DeviceToken, LoginContext, LoginStep, Method};

use crate::support::{Harness, PASSWORD};

/// A TOTP user with a trusted device, and the device's token.
async fn with_device(h: &Harness, user: &str) -> (String, DeviceToken) {
    let (secret, _) = h.enroll_totp(user).await;
    let c = h.challenge(user).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    h.advance(30);
    (secret, trust.token)
}

/// A password-only attacker requests a recovery; the real user signs in daily on a trusted
/// device. The device alone no longer completes the login while the recovery is pending: a
/// factor is asked for (and the challenge says a recovery is pending), and passing it cancels
/// the recovery, so it never takes effect.
#[tokio::test]
async fn a_device_alone_does_not_outlast_a_pending_recovery() {
    let h = Harness::new();
    let (secret, device) = with_device(&h, "u").await;
    h.tf.recovery().request("u", PASSWORD).await.unwrap();
    let step =
        h.tf.begin_login(&LoginContext::new().device(device.clone()), "u")
            .await
            .unwrap();
    let LoginStep::Challenge(c) = step else {
        panic!("the device alone completed the login while a recovery is pending: {step:?}");
    };
    assert!(c.recovery_pending());
    assert!(c.methods().contains(&Method::Totp));
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    assert!(
        v.recovery_cancelled(),
        "the host can say the recovery was cancelled"
    );
    let status = h.tf.account().status("u").await.unwrap();
    assert_eq!(status.recovery_pending_until, None);
    // With no recovery pending, the device completes the login again, and tells of none.
    h.advance(30);
    match h
        .tf
        .begin_login(&LoginContext::new().device(device), "u")
        .await
        .unwrap()
    {
        LoginStep::Complete(v) => {
            assert_eq!(v.method(), Some(Method::TrustedDevice));
            assert!(!v.recovery_cancelled());
        }
        other => panic!("{other:?}"),
    }
    let c = h.challenge("u").await;
    assert!(!c.recovery_pending());
}

/// A TOTP-only user has no address the crate knows. Without a contact hook nobody could tell
/// them that somebody asked to remove their factors, so the request is refused, with nothing
/// scheduled; with the hook, the contact is told at the request and at the reminder; a hook
/// that cannot deliver refuses the request too.
#[tokio::test]
async fn a_user_without_a_mail_or_phone_factor_is_still_told_or_nothing_happens() {
    use twofactor::error::DeliveryError;
    use twofactor::mail::{AccountNotice, AccountNotices};
    use twofactor::Error;

    // Told through the host's contact.
    let h = Harness::new();
    h.enroll_totp("u").await;
    let effective_at = h.tf.recovery().request("u", PASSWORD).await.unwrap();
    assert_eq!(
        h.notices.notices(),
        [(
            "u".to_owned(),
            AccountNotice::RecoveryRequested { effective_at }
        )]
    );
    // A repeated request tells nobody again.
    h.tf.recovery().request("u", PASSWORD).await.unwrap();
    assert_eq!(h.notices.notices().len(), 1);
    let reminder = h.tf.policy().recovery_reminder;
    h.advance(
        effective_at
            .duration_since(twofactor::clock::Timestamp::from_unix_secs(h.now()))
            .saturating_sub(reminder)
            .as_secs(),
    );
    h.tf.recovery().process("u").await.unwrap();
    assert_eq!(
        h.notices.notices().last(),
        Some(&(
            "u".to_owned(),
            AccountNotice::RecoveryReminder { effective_at }
        ))
    );

    // No channel at all: refused, nothing pending.
    let h = Harness::builder().without_account_notices().build();
    h.enroll_totp("u").await;
    let r = h.tf.recovery().request("u", PASSWORD).await;
    assert!(matches!(r, Err(Error::NoNoticeChannel)), "{r:?}");
    assert_eq!(r.unwrap_err().http_status(), 409);
    assert_eq!(
        h.tf.account()
            .status("u")
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );
    // A user with an email factor needs no hook.
    h.enroll_email("m", "m@example.com").await;
    h.tf.recovery().request("m", PASSWORD).await.unwrap();

    // A hook that cannot deliver, as the only channel: refused, nothing pending.
    let h = Harness::builder()
        .service(|b, _| b.account_notices(Unreachable))
        .build();
    h.enroll_totp("u").await;
    let r = h.tf.recovery().request("u", PASSWORD).await;
    assert!(matches!(r, Err(Error::Delivery(_))), "{r:?}");
    assert_eq!(
        h.tf.account()
            .status("u")
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );

    struct Unreachable;
    #[twofactor::async_trait]
    impl AccountNotices for Unreachable {
        async fn send(&self, _: &str, _: &AccountNotice) -> Result<(), DeliveryError> {
            Err(DeliveryError::permanent("no contact on file"))
        }
    }
}
