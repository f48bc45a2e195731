//! Seams between flows that an outside review found open: what a response status tells, what a
//! recovery request tells, whose limit a stranger can exhaust, what counts as a fresh factor,
//! and what a step-up code or a trusted device may be used for.

use twofactor::Error;
use twofactor::LoginContext;

use crate::support::{wrong, Harness};

/// Every failure of the code step, as the flows produce them: one public status and one public
/// code, so a response never tells a malformed code from a wrong one or from a dead challenge.
#[tokio::test]
async fn every_code_step_failure_has_one_public_status_and_code() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let mut failures = Vec::new();

    let c = h.challenge("u1").await;
    let ctx = LoginContext::none();
    // Malformed, then wrong.
    failures.push(
        h.tf.verify_login(ctx, c.token(), "12ab!")
            .await
            .unwrap_err(),
    );
    let right = h.totp(&secret);
    failures.push(
        h.tf.verify_login(ctx, c.token(), &wrong(&right))
            .await
            .unwrap_err(),
    );
    // The right code passes; the same challenge again is gone, and the code is spent.
    h.tf.verify_login(ctx, c.token(), &right).await.unwrap();
    failures.push(h.tf.verify_login(ctx, c.token(), &right).await.unwrap_err());
    let c = h.challenge("u1").await;
    failures.push(h.tf.verify_login(ctx, c.token(), &right).await.unwrap_err());
    // An expired challenge.
    let c = h.challenge("u1").await;
    h.advance(3600);
    failures.push(
        h.tf.verify_login(ctx, c.token(), &h.totp(&secret))
            .await
            .unwrap_err(),
    );
    // A confirmation with nothing pending.
    failures.push(
        h.tf.email()
            .confirm_setup("u1", "123456")
            .await
            .unwrap_err(),
    );

    let seen: Vec<&str> = failures.iter().map(Error::code).collect();
    for expected in [
        "malformed_code",
        "invalid_code",
        "invalid_challenge",
        "code_reused",
    ] {
        assert!(
            seen.contains(&expected),
            "{expected} not produced: {seen:?}"
        );
    }
    failures.extend([Error::Expired, Error::NothingPending]);
    for e in &failures {
        assert_eq!(e.public_code(), "invalid_code", "{e:?}");
        assert_eq!(e.public_http_status(), 401, "{e:?}");
        assert_eq!(e.public_message(), failures[0].public_message(), "{e:?}");
    }
    // Outside the code step, the public status is the status.
    for e in [
        Error::TooManyAttempts,
        Error::Locked {
            retry_after: std::time::Duration::from_secs(60),
        },
        Error::ReauthRequired,
        Error::InvalidPassword,
        Error::NotEnrolled,
        Error::InvalidInput("x"),
        Error::Internal("x"),
    ] {
        assert_eq!(e.public_http_status(), e.http_status(), "{e:?}");
        assert_eq!(e.public_code(), e.code(), "{e:?}");
    }
}
