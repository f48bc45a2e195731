//! Known incidents in other two-factor systems, each as a regression test here.
//!
//! - CVE-2024-21500 (caddy-security): restarting the multi-step flow reset the lockout.
//! - ZITADEL CVE-2024-32868 and CVE-2025-64102: a lockout missing on some paths that take a
//!   code.
//! - better-auth #8627: two-factor authentication enforced on the presence of a TOTP row rather
//!   than on the enabled state, so users with another single factor were let through.

use twofactor::{Error, LoginContext, LoginStep, Method};

use crate::support::{wrong, Harness, PASSWORD};

/// Restarting the login (a new challenge per guess) keeps the run of failures: the
/// threshold-th failure locks, whatever the number of challenges it took.
#[tokio::test]
async fn restarting_the_flow_never_resets_the_run() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u").await;
    let threshold = h.tf.policy().lockout_threshold;
    for i in 0..threshold {
        let ch = h.challenge("u").await;
        let r =
            h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(&secret)))
                .await;
        assert!(
            matches!(r, Err(Error::InvalidCode { .. })),
            "guess {i}: {r:?}"
        );
    }
    // A new challenge, a resend, the right code: all refused while locked.
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u").await,
        Err(Error::Locked { .. })
    ));
}

/// The paths that take a code, after a user's setup with TOTP (and a password).
#[derive(Clone, Copy, Debug)]
enum Path {
    Login,
    Reauthenticate,
    Disable,
    Regenerate,
}

const PATHS: [Path; 4] = [
    Path::Login,
    Path::Reauthenticate,
    Path::Disable,
    Path::Regenerate,
];

/// Submits `code` on `path` for `user`.
async fn submit(h: &Harness, path: Path, user: &str, code: &str) -> Result<(), Error> {
    match path {
        Path::Login => match h.tf.begin_login(LoginContext::none(), user).await? {
            LoginStep::Challenge(ch) => {
                h.tf.verify_login(LoginContext::none(), ch.token(), code)
                    .await
                    .map(drop)
            }
            LoginStep::Complete(_) => panic!("a login without a challenge"),
        },
        Path::Reauthenticate => h.tf.account().reauthenticate(user, code).await.map(drop),
        Path::Disable => h.tf.account().disable(user, PASSWORD, code).await,
        Path::Regenerate => h.tf.backup_codes().regenerate(user, code).await.map(drop),
    }
}

/// Every path that takes a code counts its failures in the user's one run, and none of them
/// evaluates a code, not even the right one, while the user is locked.
#[tokio::test]
async fn every_path_that_takes_a_code_is_locked_and_locks() {
    for path in PATHS {
        // Failures on this path lock the login.
        let h = Harness::new();
        let (secret, _) = h.enroll_totp("u").await;
        let threshold = h.tf.policy().lockout_threshold;
        for i in 0..threshold {
            let r = submit(&h, path, "u", &wrong(&h.totp(&secret))).await;
            assert!(
                matches!(r, Err(Error::InvalidCode { .. })),
                "{path:?}, guess {i}: {r:?}"
            );
        }
        assert!(
            matches!(
                h.tf.begin_login(LoginContext::none(), "u").await,
                Err(Error::Locked { .. })
            ),
            "{path:?}: its failures lock the login"
        );
        // A lock set at the login holds on this path, for the right code too.
        let h = Harness::new();
        let (secret, _) = h.enroll_totp("u").await;
        for _ in 0..threshold {
            let _ = submit(&h, Path::Login, "u", &wrong(&h.totp(&secret))).await;
        }
        h.advance(30);
        let r = submit(&h, path, "u", &h.totp(&secret)).await;
        assert!(
            matches!(r, Err(Error::Locked { .. })),
            "{path:?}: the right code while locked: {r:?}"
        );
        let status = h.tf.account().status("u").await.unwrap();
        assert!(status.enabled, "{path:?}: nothing changed while locked");
        assert_eq!(status.backup_codes_remaining, 10, "{path:?}");
    }
}

/// A user whose only factor is email, or a phone, is challenged, with that method; a TOTP setup
/// that was never confirmed is no factor; and after `disable` nobody is challenged.
#[tokio::test]
async fn every_single_factor_user_is_challenged_and_only_they() {
    let h = Harness::new();
    h.enroll_email("mail-only", "mail-only@example.com").await;
    h.enroll_sms("phone-only", "+4915112345678").await;
    for (user, method) in [("mail-only", Method::Email), ("phone-only", Method::Sms)] {
        let ch = h.challenge(user).await;
        assert!(ch.methods().contains(&method), "{user}: {:?}", ch.methods());
        assert!(!ch.methods().contains(&Method::Totp), "{user}");
    }
    // A setup started and never confirmed enables nothing.
    h.tf.totp()
        .start_setup("pending", "pending@example.com")
        .await
        .unwrap();
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "pending").await,
        Ok(LoginStep::Complete(_))
    ));
    // After disable the email-only user signs in with the password alone.
    h.advance(61);
    h.tf.account()
        .send_step_up_code(
            "mail-only",
            twofactor::mail::SecurityAction::DisableTwoFactor,
        )
        .await
        .unwrap();
    let code = h.last_code("mail-only@example.com");
    h.tf.account()
        .disable("mail-only", PASSWORD, &code)
        .await
        .unwrap();
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "mail-only").await,
        Ok(LoginStep::Complete(_))
    ));
}

/// kanidm #2274: user verification skipped. With `UserVerification::Required`, an assertion
/// whose authenticator did not verify the user (its UV flag clear, because the page asked for
/// `discouraged`) is refused, counted as a failure, and leaves the challenge for a proper one.
#[cfg(feature = "webauthn")]
#[tokio::test]
async fn an_assertion_without_user_verification_is_refused_when_required() {
    use crate::support::authenticator::{options, policy, SoftKey};
    use twofactor::security_key::UserVerification;

    let mut p = policy();
    p.security_keys.as_mut().unwrap().user_verification = UserVerification::Required;
    let h = Harness::with_policy(p);
    h.enroll_totp("u").await;
    let opts =
        h.tf.security_keys()
            .start_registration("u", "U")
            .await
            .unwrap();
    let mut key = SoftKey::new();
    let response = key.create(opts.as_json()).await;
    h.tf.security_keys()
        .finish_registration("u", &response, "Key")
        .await
        .unwrap();
    let c = h.challenge("u").await;
    let mut asked = options(&c);
    assert_eq!(asked["publicKey"]["userVerification"], "required");
    // A page (or a tampering client) that asks the key for less.
    asked["publicKey"]["userVerification"] = "discouraged".into();
    let unverified = key.get(&asked).await;
    // The authenticator data's flags (byte 32): user present (0x01), not verified (0x04).
    let flags = {
        use base64::Engine as _;
        let json: serde_json::Value = serde_json::from_str(&unverified).unwrap();
        let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(json["response"]["authenticatorData"].as_str().unwrap())
            .unwrap();
        data[32]
    };
    assert_eq!(flags & 0x05, 0x01, "flags {flags:#04x}");
    let r =
        h.tf.verify_login(LoginContext::none(), c.token(), &unverified)
            .await;
    assert!(
        matches!(
            r,
            Err(Error::InvalidCode { .. } | Error::SecurityKeyRejected)
        ),
        "{r:?}"
    );
    // The same key, verifying the user as asked, passes on the same challenge.
    let verified = key.get(&options(&c)).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &verified)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::SecurityKey));
}
