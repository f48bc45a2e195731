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
