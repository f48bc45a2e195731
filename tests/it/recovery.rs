//! Delayed account recovery, on the manual clock: a request schedules turning
//! two-factor authentication off after `Policy::recovery_delay`, tells the email factor at once
//! and again before the deadline, and any passed second-factor check or `cancel_recovery`
//! cancels it.
// The per-store runs need the `test-util` feature; without it their helpers are unused.
#![cfg_attr(not(feature = "test-util"), allow(dead_code))]

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    account::RecoveryProgress, events::Event, mail::MessagePurpose, Error, LoginStep, Method,
    Policy,
};

use crate::support::{every_store, fresh_user, Harness, Stores, PASSWORD};

const DELAY: u64 = 72 * 3600;
const ADDRESS: &str = "u1@example.com";

/// A user with TOTP and an email factor; returns the TOTP secret.
async fn enrolled(h: &Harness) -> String {
    let (secret, _) = h.enroll_totp("u1").await;
    h.enroll_email("u1", ADDRESS).await;
    h.advance(30);
    secret
}

fn mails(h: &Harness, purpose: MessagePurpose) -> usize {
    h.mailer
        .messages()
        .iter()
        .filter(|m| m.to == ADDRESS && m.purpose == purpose)
        .count()
}

fn is_challenge(step: &LoginStep) -> bool {
    matches!(step, LoginStep::Challenge(_))
}

#[tokio::test]
async fn a_request_is_scheduled_told_at_once_and_shown_in_status() {
    let h = Harness::new();
    enrolled(&h).await;
    // No factor, no recovery; a wrong password schedules nothing.
    assert!(matches!(
        h.tf.recovery().request("nobody", PASSWORD).await,
        Err(Error::NotEnrolled)
    ));
    assert!(matches!(
        h.tf.recovery().request("u1", "wrong password").await,
        Err(Error::InvalidPassword)
    ));
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );
    assert_eq!(mails(&h, MessagePurpose::RecoveryRequested), 0);

    let at = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    assert_eq!(at.as_unix_secs(), h.now() + DELAY);
    assert_eq!(mails(&h, MessagePurpose::RecoveryRequested), 1);
    assert!(h.events.events().contains(&Event::RecoveryRequested {
        user: "u1".into(),
        effective_at: at,
    }));
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(status.recovery_pending_until, Some(at));
    assert!(status.enabled);
}

#[tokio::test]
async fn a_login_with_a_factor_cancels_it() {
    let h = Harness::new();
    let secret = enrolled(&h).await;
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    h.advance(3600);
    let c = h.challenge("u1").await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Totp));
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );
    assert!(h
        .events
        .events()
        .contains(&Event::RecoveryCancelled { user: "u1".into() }));
    // Long past the deadline the factors are still there.
    h.advance(DELAY);
    assert!(is_challenge(
        &h.tf.begin_login(LoginContext::none(), "u1").await.unwrap()
    ));
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::None
    );
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
}

#[tokio::test]
async fn a_reauthentication_or_the_host_cancels_it() {
    let h = Harness::new();
    let secret = enrolled(&h).await;
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    h.tf.account()
        .reauthenticate("u1", &h.totp(&secret))
        .await
        .unwrap();
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );

    h.advance(30);
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    assert!(h.tf.recovery().cancel("u1").await.unwrap());
    assert!(!h.tf.recovery().cancel("u1").await.unwrap());
    h.advance(DELAY);
    assert!(is_challenge(
        &h.tf.begin_login(LoginContext::none(), "u1").await.unwrap()
    ));
}

#[tokio::test]
async fn it_takes_effect_at_the_deadline() {
    let h = Harness::new();
    enrolled(&h).await;
    let at = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    h.advance(DELAY - 1);
    // A challenge begun is no second-factor check: it cancels nothing.
    assert!(is_challenge(
        &h.tf.begin_login(LoginContext::none(), "u1").await.unwrap()
    ));
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Pending { effective_at: at }
    );
    h.advance(1);
    let disabled_before = mails(&h, MessagePurpose::TwoFactorDisabled);
    let LoginStep::Complete(v) = h.tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!("the recovery took effect: no factor is left");
    };
    assert_eq!(v.method(), None);
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.backup_codes_remaining, 0);
    assert_eq!(status.recovery_pending_until, None);
    assert_eq!(
        mails(&h, MessagePurpose::TwoFactorDisabled),
        disabled_before + 1
    );
    assert!(h
        .events
        .events()
        .contains(&Event::RecoveryCompleted { user: "u1".into() }));
}

#[tokio::test]
async fn the_host_job_reminds_once_and_completes_at_the_deadline() {
    let h = Harness::new();
    enrolled(&h).await;
    let at = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    h.advance(DELAY - 24 * 3600 - 1);
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Pending { effective_at: at }
    );
    assert_eq!(mails(&h, MessagePurpose::RecoveryReminder), 0);
    h.advance(1);
    h.tf.recovery().process("u1").await.unwrap();
    assert_eq!(mails(&h, MessagePurpose::RecoveryReminder), 1);
    h.advance(3600);
    h.tf.recovery().process("u1").await.unwrap();
    assert_eq!(mails(&h, MessagePurpose::RecoveryReminder), 1, "once");
    h.advance(23 * 3600 - 1);
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
    h.advance(1);
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Completed
    );
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::None
    );
}

#[tokio::test]
async fn a_second_request_neither_extends_nor_shortens_the_first() {
    let h = Harness::new();
    enrolled(&h).await;
    let first = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    h.advance(10 * 3600);
    // Asked again later: the same deadline, and no second mail.
    assert_eq!(
        h.tf.recovery().request("u1", PASSWORD).await.unwrap(),
        first
    );
    assert_eq!(mails(&h, MessagePurpose::RecoveryRequested), 1);
    // Asked again on a server whose policy has a much shorter delay: still the same deadline.
    let mut short = Policy::default();
    short.recovery_delay = Duration::from_secs(3600);
    short.recovery_reminder = Duration::from_secs(600);
    let twin = h.like().policy(short).build();
    assert_eq!(
        twin.tf.recovery().request("u1", PASSWORD).await.unwrap(),
        first
    );
    h.advance(3600);
    assert_eq!(
        twin.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Pending {
            effective_at: first
        }
    );
    h.advance(first.as_unix_secs() - h.now() - 1);
    assert!(h.tf.account().status("u1").await.unwrap().enabled);
    h.advance(1);
    assert_eq!(
        h.tf.recovery().process("u1").await.unwrap(),
        RecoveryProgress::Completed
    );
}

#[tokio::test]
/// While a recovery is pending a trusted device alone does not complete the login (a factor
/// is asked for, and the challenge says why); not answering it leaves the recovery pending, and
/// it takes effect at its deadline.
async fn a_trusted_device_alone_neither_passes_nor_cancels_nor_outlives_it() {
    let h = Harness::new();
    let secret = enrolled(&h).await;
    let c = h.challenge("u1").await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
            .await
            .unwrap();
    let trust = h.tf.devices().trust(&v, "laptop", None).await.unwrap();
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    let step =
        h.tf.begin_login(&LoginContext::new().device(trust.token.clone()), "u1")
            .await
            .unwrap();
    assert!(matches!(&step, LoginStep::Challenge(c) if c.recovery_pending()));
    assert!(h
        .tf
        .account()
        .status("u1")
        .await
        .unwrap()
        .recovery_pending_until
        .is_some());
    h.advance(DELAY);
    let step =
        h.tf.begin_login(&LoginContext::new().device(trust.token.clone()), "u1")
            .await
            .unwrap();
    assert!(matches!(&step, LoginStep::Complete(v) if v.method().is_none()));
    assert!(!h.tf.account().status("u1").await.unwrap().enabled);
}

#[test]
fn the_policy_bounds_the_delay_and_the_reminder() {
    let mut p = Policy::default();
    assert_eq!(p.recovery_delay, Duration::from_secs(DELAY));
    assert!(p.validate().is_ok());
    p.recovery_delay = Duration::from_secs(60);
    assert!(p.validate().is_err());
    let mut p = Policy::default();
    p.recovery_reminder = p.recovery_delay;
    assert!(p.validate().is_err());
}

/// Recovery on every store: a login cancels it; a second request keeps the first deadline; the
/// host job completes it there.
async fn recovery_flow(stores: &Stores) {
    let h = Harness::on_stores(stores);
    let (tf, clock) = (&h.tf, &h.clock);
    let u = fresh_user("flow-user");
    let (secret, _) = h.enroll_totp(&u).await;
    tf.recovery().request(&u, PASSWORD).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    let c = h.challenge(&u).await;
    tf.verify_login(LoginContext::none(), c.token(), &h.totp(&secret))
        .await
        .unwrap();
    assert_eq!(
        tf.account()
            .status(&u)
            .await
            .unwrap()
            .recovery_pending_until,
        None
    );

    clock.advance(Duration::from_secs(60));
    let first = tf.recovery().request(&u, PASSWORD).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(tf.recovery().request(&u, PASSWORD).await.unwrap(), first);
    assert_eq!(
        tf.account()
            .status(&u)
            .await
            .unwrap()
            .recovery_pending_until,
        Some(first)
    );
    clock.advance(Duration::from_secs(DELAY - 3600 - 1));
    assert_eq!(
        tf.recovery().process(&u).await.unwrap(),
        RecoveryProgress::Pending {
            effective_at: first
        }
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        tf.recovery().process(&u).await.unwrap(),
        RecoveryProgress::Completed
    );
    let status = tf.account().status(&u).await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.backup_codes_remaining, 0);
    assert!(matches!(
        tf.begin_login(LoginContext::none(), &u).await.unwrap(),
        LoginStep::Complete(v) if v.method().is_none()
    ));
}

every_store!(recovery_flow);
