//! A session alone cannot change the factors (SECURITY.md: INV-10, CHK-24): on an account with a
//! factor, adding one needs a second-factor check passed within `Policy::reauth_window`, and the
//! existing factors are told when one is added.

use twofactor::{events::Event, mail::MessagePurpose, mail::SecurityAction, Error};

use crate::support::Harness;

/// A TOTP-only account: an hour after its last check, a session cannot add an email factor (the
/// takeover: add the attacker's address, then a step-up code to it) nor regenerate codes.
#[tokio::test]
async fn a_session_alone_cannot_add_an_email_factor_to_a_totp_account() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.advance(3600);
    assert!(matches!(
        h.tf.email().start_setup("u1", "attacker@example.com").await,
        Err(Error::ReauthRequired)
    ));
    assert!(h.mailer.last_to("attacker@example.com").is_none());
    assert!(matches!(
        h.tf.backup_codes().regenerate("u1", "").await,
        Err(Error::MalformedCode | Error::InvalidCode { .. })
    ));
    // A current code opens the window, for reauth_window only.
    h.tf.account()
        .reauthenticate("u1", &h.totp(&secret))
        .await
        .unwrap();
    assert!(h.events.events().iter().any(|e| matches!(
        e,
        Event::Reauthenticated {
            method: twofactor::Method::Totp,
            ..
        }
    )));
    h.tf.email()
        .start_setup("u1", "me@example.com")
        .await
        .unwrap();
    h.advance(h.tf.policy().reauth_window.as_secs());
    assert!(matches!(
        h.tf.email().start_setup("u1", "me@example.com").await,
        Err(Error::ReauthRequired)
    ));
}

/// An email-only account: a session alone cannot enrol its own TOTP secret; an emailed step-up
/// code naming the change opens the window, and the email factor is told of the new factor.
#[tokio::test]
async fn a_session_alone_cannot_enrol_totp_on_an_email_account() {
    let h = Harness::new();
    h.enroll_email("u2", "u2@example.com").await;
    h.advance(3600);
    assert!(matches!(
        h.tf.totp().start_setup("u2", "u2@example.com").await,
        Err(Error::ReauthRequired)
    ));
    h.tf.account()
        .send_step_up_code("u2", SecurityAction::AddFactor)
        .await
        .unwrap();
    let mail = h.mailer.last_to("u2@example.com").unwrap();
    assert_eq!(mail.purpose, MessagePurpose::SecurityCode);
    assert!(
        mail.text.contains("adding a sign-in method"),
        "{}",
        mail.text
    );
    let code = h.last_code("u2@example.com");
    h.tf.account().reauthenticate("u2", &code).await.unwrap();
    let setup =
        h.tf.totp()
            .start_setup("u2", "u2@example.com")
            .await
            .unwrap();
    let secret = setup.secret_base32().to_owned();
    h.tf.totp()
        .confirm_setup("u2", &h.totp(&secret))
        .await
        .unwrap();
    let told = h.mailer.last_to("u2@example.com").unwrap();
    assert_eq!(told.purpose, MessagePurpose::FactorAdded);
    assert!(h.events.events().iter().any(|e| matches!(
        e,
        Event::FactorSetupStarted {
            method: twofactor::Method::Totp,
            ..
        }
    )));
}

/// The step-up code that confirms turning two-factor off says so, and is not a sign-in code.
#[tokio::test]
async fn the_disable_code_names_its_action() {
    let h = Harness::new();
    h.enroll_email("u3", "u3@example.com").await;
    h.tf.account()
        .send_step_up_code("u3", SecurityAction::DisableTwoFactor)
        .await
        .unwrap();
    let mail = h.mailer.last_to("u3@example.com").unwrap();
    assert_eq!(mail.purpose, MessagePurpose::SecurityCode);
    assert!(mail.subject.contains("security change"), "{}", mail.subject);
    assert!(
        mail.text.contains("turning off two-factor"),
        "{}",
        mail.text
    );
    assert!(!mail.subject.contains("sign-in code"));
}

/// Without any factor there is nothing to protect yet: setup needs no fresh factor.
#[tokio::test]
async fn a_first_factor_needs_no_reauthentication() {
    let h = Harness::new();
    h.advance(86_400);
    h.tf.totp()
        .start_setup("u4", "u4@example.com")
        .await
        .unwrap();
    assert!(matches!(
        h.tf.account().reauthenticate("u4", "123456").await,
        Err(Error::NotEnrolled)
    ));
}
