//! Trusted devices ("remember this device"): trust after a passed factor, a
//! login that completes on the device token, listing, revocation, and every way a token is
//! refused. The flow also runs on every store at the end.
// The per-store runs need the `test-util` feature; without it their helpers are unused.
#![cfg_attr(not(feature = "test-util"), allow(dead_code))]

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    account::DeviceToken, events::Event, mail::MessagePurpose, store::EnrollmentStore,
    ChallengeToken, Error, LoginStep, Method, Policy, TwoFactorService, Verified,
};

use crate::support::{every_store, fresh_user, wrong, Harness, Stores, PASSWORD};

/// A login answered with the user's TOTP code.
async fn login(h: &Harness, user: &str, secret: &str) -> Verified {
    let c = h.challenge(user).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(secret))
            .await
            .unwrap();
    h.advance(30);
    v
}

async fn device_login(tf: &TwoFactorService, user: &str, token: &DeviceToken) -> LoginStep {
    tf.begin_login(&LoginContext::new().device(token.clone()), user)
        .await
        .unwrap()
}

fn completed_by_device(step: &LoginStep) -> bool {
    matches!(step, LoginStep::Complete(v) if v.method() == Some(Method::TrustedDevice))
}

fn refused(step: &LoginStep) -> bool {
    matches!(step, LoginStep::Challenge(_))
}

/// A device login passes the same per-client gate as any other login step: with the client
/// named in the context, it counts against `Policy::client_login_limit`, and past it the device
/// does not complete the login for that client (another client still gets through).
#[tokio::test]
async fn a_device_login_counts_against_the_client_limit() {
    let mut policy = Policy::default();
    policy.client_login_limit = twofactor::rate_limit::Limit::fixed(2, Duration::from_secs(60));
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    let from = |client: &str| {
        LoginContext::new()
            .client(client)
            .device(trust.token.clone())
    };
    for _ in 0..2 {
        let step = h.tf.begin_login(&from("198.51.100.7"), "u1").await.unwrap();
        assert!(completed_by_device(&step));
    }
    assert!(matches!(
        h.tf.begin_login(&from("198.51.100.7"), "u1").await,
        Err(Error::RateLimited { .. })
    ));
    let step = h.tf.begin_login(&from("203.0.113.9"), "u1").await.unwrap();
    assert!(completed_by_device(&step));
}

#[tokio::test]
async fn a_trusted_device_signs_in_without_a_challenge() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "u1@example.com").await;
    let v = login(&h, "u1", &secret).await;
    h.events.clear();
    let trust =
        h.tf.devices()
            .trust(&v, "Firefox on Linux", None)
            .await
            .unwrap();
    let token = trust.token.as_str();
    assert!(token.starts_with("tfd1_") && token.len() == 48, "{token}");
    assert_eq!(format!("{:?}", trust.token), "DeviceToken([redacted])");
    assert!(!format!("{trust:?}").contains(&token[5..]));
    assert_eq!(trust.device.label, "Firefox on Linux");
    assert_eq!(trust.device.created_at.as_unix_secs(), h.now());
    assert_eq!(trust.device.last_used_at, None);
    // Default lifetime: 30 days.
    assert_eq!(
        trust.device.expires_at.as_unix_secs(),
        h.now() + 30 * 86_400
    );
    assert!(h.events.events().contains(&Event::DeviceTrusted {
        user: "u1".into(),
        device: trust.device.id.clone(),
    }));
    let mail = h.mailer.last_to("u1@example.com").unwrap();
    assert_eq!(mail.purpose, MessagePurpose::DeviceTrusted);
    assert!(!mail.text.contains(&token[5..]));

    h.advance(3600);
    let sent = h.mailer.messages().len();
    let step = device_login(&h.tf, "u1", &trust.token).await;
    let LoginStep::Complete(v) = &step else {
        panic!("expected a completed login, got {step:?}");
    };
    assert_eq!(v.method(), Some(Method::TrustedDevice));
    assert_eq!(v.user(), "u1");
    assert_eq!(v.backup_codes_remaining(), 10);
    assert_eq!(h.mailer.messages().len(), sent, "no code was mailed");
    assert!(h.events.events().contains(&Event::Verified {
        user: "u1".into(),
        method: Method::TrustedDevice,
    }));
    assert_eq!(serde_json::to_value(v).unwrap()["method"], "trusted_device");

    let listed = h.tf.devices().list("u1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, trust.device.id);
    assert_eq!(listed[0].label, "Firefox on Linux");
    assert_eq!(listed[0].created_at, trust.device.created_at);
    assert_eq!(listed[0].last_used_at.unwrap().as_unix_secs(), h.now());
    assert_eq!(
        h.tf.account().status("u1").await.unwrap().trusted_devices,
        1
    );

    // Without a token, or with none at all, the login asks for a code as before.
    assert!(refused(
        &h.tf.begin_login(LoginContext::none(), "u1").await.unwrap()
    ));
}

#[tokio::test]
async fn the_token_is_stored_only_as_a_keyed_hash() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "phone", None).await.unwrap();
    let (rec, _) = h.enrollments.load("u1").await.unwrap().unwrap();
    assert_eq!(rec.trusted_devices.len(), 1);
    let stored = serde_json::to_string(&rec).unwrap();
    let body = &trust.token.as_str()[5..];
    assert!(!stored.contains(body));
    assert_eq!(rec.trusted_devices[0].mac.len(), 32);
    use base64::Engine as _;
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    assert_ne!(rec.trusted_devices[0].mac, random);
}

#[tokio::test]
async fn another_users_token_is_refused() {
    let h = Harness::new();
    let (s1, _) = h.enroll_totp("u1").await;
    h.enroll_totp("u2").await;
    let v = login(&h, "u1", &s1).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    h.events.clear();
    assert!(refused(&device_login(&h.tf, "u2", &trust.token).await));
    assert!(h
        .events
        .events()
        .contains(&Event::DeviceRejected { user: "u2".into() }));
    assert!(h.tf.devices().list("u2").await.unwrap().is_empty());
    // The owner still can.
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &trust.token).await
    ));
}

#[tokio::test]
async fn an_expired_token_is_refused_and_the_lifetime_is_capped() {
    let mut policy = Policy::default();
    policy.trusted_device_ttl = Duration::from_secs(7 * 86_400);
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let long =
        h.tf.devices()
            .trust(
                &v,
                "asks for a year",
                Some(Duration::from_secs(365 * 86_400)),
            )
            .await
            .unwrap();
    assert_eq!(
        long.device.expires_at.as_unix_secs(),
        h.now() + 7 * 86_400,
        "capped by the policy"
    );
    let short =
        h.tf.devices()
            .trust(&v, "an hour", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
    h.advance(3599);
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &short.token).await
    ));
    h.advance(1);
    assert!(refused(&device_login(&h.tf, "u1", &short.token).await));
    h.advance(7 * 86_400 - 3600 - 1);
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &long.token).await
    ));
    h.advance(1);
    assert!(refused(&device_login(&h.tf, "u1", &long.token).await));
    assert!(h.tf.devices().list("u1").await.unwrap().is_empty());
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let a = h.tf.devices().trust(&v, "a", None).await.unwrap();
    let b = h.tf.devices().trust(&v, "b", None).await.unwrap();
    let c = h.tf.devices().trust(&v, "c", None).await.unwrap();
    h.events.clear();
    assert!(h.tf.devices().revoke("u1", &a.device.id).await.unwrap());
    assert!(!h.tf.devices().revoke("u1", &a.device.id).await.unwrap());
    // Another user cannot revoke it by id either: ids are per user.
    assert!(!h.tf.devices().revoke("u2", &b.device.id).await.unwrap());
    assert!(refused(&device_login(&h.tf, "u1", &a.token).await));
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &b.token).await
    ));
    assert_eq!(h.tf.devices().revoke_all("u1").await.unwrap(), 2);
    assert!(h.events.events().contains(&Event::DevicesRevoked {
        user: "u1".into(),
        count: 2
    }));
    for t in [&a.token, &b.token, &c.token] {
        assert!(refused(&device_login(&h.tf, "u1", t).await));
    }
    assert!(h.tf.devices().list("u1").await.unwrap().is_empty());
    assert_eq!(h.tf.devices().revoke_all("u1").await.unwrap(), 0);
}

#[tokio::test]
async fn disable_revokes_every_device_also_after_enrolling_again() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    // No factor: the login completes without one, and not by the device.
    let step = device_login(&h.tf, "u1", &trust.token).await;
    assert!(matches!(&step, LoginStep::Complete(v) if v.method().is_none()));
    h.advance(30);
    let (secret, _) = h.enroll_totp("u1").await;
    assert!(refused(&device_login(&h.tf, "u1", &trust.token).await));
    assert!(h.tf.devices().list("u1").await.unwrap().is_empty());
    let _ = secret;
}

#[tokio::test]
async fn a_backup_code_regeneration_revokes_every_device() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    // A wrong code changes nothing.
    assert!(h
        .tf
        .backup_codes()
        .regenerate("u1", &wrong(&h.totp(&secret)))
        .await
        .is_err());
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &trust.token).await
    ));
    h.tf.backup_codes()
        .regenerate("u1", &h.totp(&secret))
        .await
        .unwrap();
    assert!(refused(&device_login(&h.tf, "u1", &trust.token).await));
    assert!(h.tf.devices().list("u1").await.unwrap().is_empty());
}

#[tokio::test]
async fn device_and_challenge_tokens_are_never_taken_for_each_other() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    let challenge = h.challenge("u1").await;
    let c_text = challenge.token().as_str().to_owned();
    let d_text = trust.token.as_str().to_owned();
    assert!(ChallengeToken::parse(&d_text).is_err());
    assert!(d_text.parse::<ChallengeToken>().is_err());
    assert!(serde_json::from_value::<ChallengeToken>(d_text.clone().into()).is_err());
    assert!(DeviceToken::parse(&c_text).is_err());
    // Same body under the other prefix is not a token either.
    assert!(ChallengeToken::parse(&d_text.replacen("tfd1_", "tfc2_", 1)).is_err());
    assert!(DeviceToken::parse(&c_text.replacen("tfc2_", "tfd1_", 1)).is_err());
    // Malformed device tokens: an error, never a panic.
    for bad in [
        "",
        "tfd1_",
        "tfd1_!!!",
        &format!("{d_text}A"),
        &d_text[..47],
    ] {
        assert!(DeviceToken::parse(bad).is_err(), "{bad:?}");
    }
    // The challenge still answers to its code only.
    let v =
        h.tf.verify_login(LoginContext::none(), challenge.token(), &h.totp(&secret))
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
}

#[tokio::test]
async fn trust_needs_a_fresh_check_of_a_real_factor() {
    let h = Harness::new();
    // No factor: the Verified names none.
    let LoginStep::Complete(none) = h.tf.begin_login(LoginContext::none(), "u0").await.unwrap()
    else {
        panic!("no factor, no challenge");
    };
    assert!(matches!(
        h.tf.devices().trust(&none, "x", None).await,
        Err(Error::ReauthRequired)
    ));
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    for bad in ["", "   ", "line\nbreak", &"x".repeat(129)] {
        assert!(
            matches!(
                h.tf.devices().trust(&v, bad, None).await,
                Err(Error::InvalidInput(_))
            ),
            "{bad:?}"
        );
    }
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    // A device login cannot extend its own trust.
    let LoginStep::Complete(by_device) = device_login(&h.tf, "u1", &trust.token).await else {
        panic!("expected a device login");
    };
    assert!(matches!(
        h.tf.devices().trust(&by_device, "again", None).await,
        Err(Error::ReauthRequired)
    ));
    // A stale check is not enough.
    h.advance(h.tf.policy().reauth_window.as_secs() + 1);
    assert!(matches!(
        h.tf.devices().trust(&v, "late", None).await,
        Err(Error::ReauthRequired)
    ));
}

#[tokio::test]
async fn a_device_login_resets_no_limit_and_is_no_fresh_factor() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    // Nine wrong codes over two challenges.
    let bad = wrong(&h.totp(&secret));
    for n in [5, 4] {
        let c = h.challenge("u1").await;
        for _ in 0..n {
            assert!(h
                .tf
                .verify_login(LoginContext::none(), c.token(), &bad)
                .await
                .is_err());
        }
    }
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &trust.token).await
    ));
    // The tenth consecutive failure still locks: the device login ended no run.
    let c = h.challenge("u1").await;
    assert!(h
        .tf
        .verify_login(LoginContext::none(), c.token(), &bad)
        .await
        .is_err());
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await,
        Err(Error::Locked { .. })
    ));
    // After the reauthentication window, a device login is no fresh factor for a change.
    h.advance(3 * 3600);
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &trust.token).await
    ));
    assert!(matches!(
        h.tf.email().start_setup("u1", "u1@example.com").await,
        Err(Error::ReauthRequired)
    ));
}

#[tokio::test]
async fn the_least_recently_used_device_is_forgotten_past_the_cap() {
    let mut policy = Policy::default();
    policy.max_trusted_devices = 2;
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    let v = login(&h, "u1", &secret).await;
    let a = h.tf.devices().trust(&v, "a", None).await.unwrap();
    h.advance(1);
    let b = h.tf.devices().trust(&v, "b", None).await.unwrap();
    h.advance(1);
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &a.token).await
    ));
    h.advance(1);
    let c = h.tf.devices().trust(&v, "c", None).await.unwrap();
    let labels: Vec<String> =
        h.tf.devices()
            .list("u1")
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.label)
            .collect();
    assert_eq!(labels, ["a", "c"]);
    assert!(refused(&device_login(&h.tf, "u1", &b.token).await));
    assert!(completed_by_device(
        &device_login(&h.tf, "u1", &c.token).await
    ));
}

/// The device flow on every store: trust, sign in, list, revoke one, disable.
async fn device_flow(stores: &Stores) {
    let h = Harness::on_stores(stores);
    let u = fresh_user("flow-user");
    let (secret, _) = h.enroll_totp(&u).await;
    let c = h.challenge(&u).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    let a = h.tf.devices().trust(&v, "a", None).await.unwrap();
    let b = h.tf.devices().trust(&v, "b", None).await.unwrap();
    h.advance(60);
    assert!(completed_by_device(
        &device_login(&h.tf, &u, &a.token).await
    ));
    let listed = h.tf.devices().list(&u).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].last_used_at.unwrap().as_unix_secs(), h.now());
    assert!(h.tf.devices().revoke(&u, &a.device.id).await.unwrap());
    assert!(refused(&device_login(&h.tf, &u, &a.token).await));
    assert!(completed_by_device(
        &device_login(&h.tf, &u, &b.token).await
    ));
    h.advance(30);
    h.tf.account()
        .disable(&u, PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    let step = device_login(&h.tf, &u, &b.token).await;
    assert!(matches!(&step, LoginStep::Complete(v) if v.method().is_none()));
}

every_store!(device_flow);
