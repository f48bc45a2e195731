//! The enrolment check that the authenticator app honoured the requested algorithm and digits,
//! with `oathtool` as the outside witness of what each app would show.

use twofactor::LoginContext;
use twofactor::{events::Event, totp::TotpAlgorithm, Error, LoginStep, Policy};

use crate::support::tools::{have, oathtool};
use crate::support::{wrong, Harness};

fn policy(algorithm: TotpAlgorithm, digits: u32, fallback: bool) -> Policy {
    let mut p = Policy::default();
    p.totp_algorithm = algorithm;
    p.totp_digits = digits;
    p.totp_allow_sha1_fallback = fallback;
    p
}

/// What an app that ignores `algorithm=` and `digits=` shows: SHA-1, 6 digits.
fn sha1_6(h: &Harness, secret: &str) -> String {
    oathtool("--totp", 6, secret, h.now())
}

async fn start(h: &Harness, user: &str) -> String {
    let setup = h.tf.totp().start_setup(user, "alice").await.unwrap();
    setup.secret_base32().to_owned()
}

#[tokio::test]
async fn a_sha1_code_for_a_sha256_setup_is_refused_with_its_own_error() {
    if !have("oathtool", "oathtool") {
        return;
    }
    let h = Harness::with_policy(policy(TotpAlgorithm::Sha256, 6, false));
    let secret = start(&h, "u1").await;
    let e =
        h.tf.totp()
            .confirm_setup("u1", &sha1_6(&h, &secret))
            .await
            .unwrap_err();
    assert!(
        matches!(
            e,
            Error::TotpAlgorithmUnsupported {
                requested: "SHA256",
                digits: 6
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), "totp_algorithm_unsupported");
    assert_eq!(e.public_code(), "totp_algorithm_unsupported");
    assert_eq!(e.http_status(), 422);
    assert!(e.public_message().contains("authenticator app"));
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled && status.totp_pending);
    // An app that honours the setting confirms the same setup.
    let good = oathtool("--totp=sha256", 6, &secret, h.now());
    h.tf.totp().confirm_setup("u1", &good).await.unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(status.totp_algorithm, Some(TotpAlgorithm::Sha256));
    assert_eq!(status.totp_digits, Some(6));
    assert!(!status.totp_sha1_fallback);
}

#[tokio::test]
async fn a_six_digit_sha1_code_for_an_eight_digit_setup_is_refused() {
    if !have("oathtool", "oathtool") {
        return;
    }
    for (algorithm, mode) in [
        (TotpAlgorithm::Sha1, "--totp"),
        (TotpAlgorithm::Sha512, "--totp=sha512"),
    ] {
        let h = Harness::with_policy(policy(algorithm, 8, false));
        let secret = start(&h, "u1").await;
        let e =
            h.tf.totp()
                .confirm_setup("u1", &sha1_6(&h, &secret))
                .await
                .unwrap_err();
        assert!(
            matches!(e, Error::TotpAlgorithmUnsupported { requested, digits: 8 } if requested == algorithm.name()),
            "{e:?}"
        );
        // A wrong 6-digit code is a wrong code, not an unsupported app.
        let e =
            h.tf.totp()
                .confirm_setup("u1", &wrong(&sha1_6(&h, &secret)))
                .await
                .unwrap_err();
        assert!(matches!(e, Error::InvalidCode { .. }), "{e:?}");
        let good = oathtool(mode, 8, &secret, h.now());
        h.tf.totp().confirm_setup("u1", &good).await.unwrap();
        let status = h.tf.account().status("u1").await.unwrap();
        assert_eq!(status.totp_algorithm, Some(algorithm));
        assert_eq!(status.totp_digits, Some(8));
    }
}

#[tokio::test]
async fn with_the_fallback_allowed_a_sha1_code_enrols_sha1_and_logins_use_it() {
    if !have("oathtool", "oathtool") {
        return;
    }
    let h = Harness::with_policy(policy(TotpAlgorithm::Sha512, 8, true));
    let secret = start(&h, "u1").await;
    h.events.clear();
    h.tf.totp()
        .confirm_setup("u1", &sha1_6(&h, &secret))
        .await
        .unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.totp_algorithm, Some(TotpAlgorithm::Sha1));
    assert_eq!(status.totp_digits, Some(6));
    assert!(status.totp_sha1_fallback);
    assert!(h.events.events().contains(&Event::TotpSha1Fallback {
        user: "u1".into(),
        requested: TotpAlgorithm::Sha512,
        digits: 8,
    }));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["totp_algorithm"], "SHA1");

    // Later checks use what the app uses: SHA-1/6 passes, the requested SHA-512/8 does not.
    h.advance(30);
    let LoginStep::Challenge(c) = h.tf.begin_login(LoginContext::none(), "u1").await.unwrap()
    else {
        panic!("expected a challenge");
    };
    let requested = oathtool("--totp=sha512", 8, &secret, h.now());
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &requested)
            .await,
        Err(Error::InvalidCode { .. } | Error::MalformedCode)
    ));
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &sha1_6(&h, &secret))
            .await
            .unwrap();
    assert_eq!(v.method(), Some(twofactor::Method::Totp));
}

#[tokio::test]
async fn with_the_fallback_allowed_the_requested_setting_still_enrols_as_asked() {
    if !have("oathtool", "oathtool") {
        return;
    }
    let h = Harness::with_policy(policy(TotpAlgorithm::Sha256, 6, true));
    let secret = start(&h, "u1").await;
    let good = oathtool("--totp=sha256", 6, &secret, h.now());
    h.tf.totp().confirm_setup("u1", &good).await.unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(status.totp_algorithm, Some(TotpAlgorithm::Sha256));
    assert!(!status.totp_sha1_fallback);
}

/// Wrong confirmation codes until the user is locked, returning how many were answered
/// `InvalidCode` first.
async fn wrong_codes_until_locked(h: &Harness, secret: &str, digits: u32, mode: &str) -> u32 {
    let mut n = 0;
    loop {
        let bad = wrong(&oathtool(mode, digits, secret, h.now()));
        match h.tf.totp().confirm_setup("u1", &bad).await {
            Err(Error::InvalidCode { .. }) => n += 1,
            Err(Error::Locked { .. }) => return n,
            other => panic!("unexpected {other:?}"),
        }
        assert!(n < 100);
    }
}

#[tokio::test]
async fn each_setting_compared_counts_against_the_lock() {
    if !have("oathtool", "oathtool") {
        return;
    }
    // Default SHA-1/6: one setting per code, 10 wrong codes before the lock.
    let h = Harness::new();
    let secret = start(&h, "u1").await;
    assert_eq!(wrong_codes_until_locked(&h, &secret, 6, "--totp").await, 10);
    // SHA-256/6: a 6-digit code is compared under both settings and counts twice.
    for fallback in [false, true] {
        let h = Harness::with_policy(policy(TotpAlgorithm::Sha256, 6, fallback));
        let secret = start(&h, "u1").await;
        assert_eq!(
            wrong_codes_until_locked(&h, &secret, 6, "--totp=sha256").await,
            5
        );
    }
    // SHA-256/8: an 8-digit code is compared under the requested setting only, a 6-digit one
    // under SHA-1/6 only: one attempt each.
    let h = Harness::with_policy(policy(TotpAlgorithm::Sha256, 8, false));
    let secret = start(&h, "u1").await;
    assert_eq!(
        wrong_codes_until_locked(&h, &secret, 8, "--totp=sha256").await,
        10
    );
    let h = Harness::with_policy(policy(TotpAlgorithm::Sha256, 8, false));
    let secret = start(&h, "u1").await;
    assert_eq!(wrong_codes_until_locked(&h, &secret, 6, "--totp").await, 10);
    // Once locked, even the right code is not compared.
    let right = oathtool("--totp", 6, &secret, h.now());
    assert!(matches!(
        h.tf.totp().confirm_setup("u1", &right).await,
        Err(Error::Locked { .. })
    ));
}
