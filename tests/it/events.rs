//! Security events (SECURITY.md: CHK-22; ASVS 2.8.5, 2.5.5): a recording sink sees exactly the
//! expected events, in order, for success, failure, lockout, replay, factors enabled and
//! disabled, backup codes used and regenerated, and codes sent.
//!
//! Attempts refused before any code is compared (malformed input, a void or unknown challenge, a
//! locked user, a cooldown) record nothing: no code was evaluated.

use twofactor::LoginContext;
use twofactor::{clock::Timestamp, events::Event, mail::SecurityAction, Method, Policy};

use crate::support::{faults, wrong, Harness, PASSWORD};

fn verified(user: &str, method: Method) -> Event {
    Event::Verified {
        user: user.into(),
        method,
    }
}

fn rejected(user: &str) -> Event {
    Event::CodeRejected { user: user.into() }
}

fn sent(user: &str) -> Event {
    Event::CodeSent { user: user.into() }
}

fn enabled(user: &str, method: Method) -> Event {
    Event::FactorEnabled {
        user: user.into(),
        method,
    }
}

fn used(user: &str, remaining: u32) -> Event {
    Event::BackupCodeUsed {
        user: user.into(),
        remaining,
    }
}

/// The events recorded since the last call, and forgets them.
fn take(h: &Harness) -> Vec<Event> {
    let e = h.events.events();
    h.events.clear();
    e
}

#[tokio::test]
async fn totp_enrolment_records_the_factor_enabled() {
    let h = Harness::new();
    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    assert_eq!(
        take(&h),
        [Event::FactorSetupStarted {
            user: "u1".into(),
            method: Method::Totp
        }]
    );
    let code = h.totp(setup.secret_base32());
    h.tf.totp()
        .confirm_setup("u1", &wrong(&code))
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);
    h.tf.totp().confirm_setup("u1", &code).await.unwrap();
    assert_eq!(take(&h), [enabled("u1", Method::Totp)]);
}

#[tokio::test]
async fn email_enrolment_and_registration_record_codes_sent_and_the_factor_enabled() {
    let h = Harness::new();
    h.tf.email()
        .start_setup("u1", "a@example.com")
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [
            sent("u1"),
            Event::FactorSetupStarted {
                user: "u1".into(),
                method: Method::Email
            }
        ]
    );
    let code = h.last_code("a@example.com");
    h.tf.email()
        .confirm_setup("u1", &wrong(&code))
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);
    h.tf.email().confirm_setup("u1", &code).await.unwrap();
    assert_eq!(take(&h), [enabled("u1", Method::Email)]);

    // A registration code is sent, and checked; it is not a second factor, so no Verified.
    h.tf.email()
        .send_verification_code("u2", "b@example.com")
        .await
        .unwrap();
    assert_eq!(take(&h), [sent("u2")]);
    let code = h.last_code("b@example.com");
    h.tf.email()
        .verify_registration_code("u2", &wrong(&code))
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u2")]);
    h.tf.email()
        .verify_registration_code("u2", &code)
        .await
        .unwrap();
    assert_eq!(take(&h), []);
}

#[tokio::test]
async fn each_login_method_records_its_success() {
    let h = Harness::new();
    let (secret, backup) = h.enroll_totp("u1").await;
    h.enroll_email("u2", "b@example.com").await;
    take(&h);

    let ch = h.challenge("u1").await;
    assert_eq!(take(&h), [], "a TOTP-only challenge sends nothing");
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
        .await
        .unwrap();
    assert_eq!(take(&h), [verified("u1", Method::Totp)]);

    let ch = h.challenge("u2").await;
    assert_eq!(take(&h), [sent("u2")]);
    h.tf.verify_login(
        &LoginContext::new(),
        ch.token(),
        &h.last_code("b@example.com"),
    )
    .await
    .unwrap();
    assert_eq!(take(&h), [verified("u2", Method::Email)]);

    let ch = h.challenge("u1").await;
    h.tf.verify_login(LoginContext::none(), ch.token(), &backup[4])
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [used("u1", 9), verified("u1", Method::BackupCode)]
    );
}

#[tokio::test]
async fn a_wrong_code_records_a_rejection_and_refusals_before_comparison_record_nothing() {
    let mut policy = Policy::default();
    policy.challenge_max_attempts = 2;
    let h = Harness::with_policy(policy);
    let (secret, _) = h.enroll_totp("u1").await;
    take(&h);
    let ch = h.challenge("u1").await;
    let w = wrong(&h.totp(&secret));
    h.tf.verify_login(LoginContext::none(), ch.token(), &w)
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);
    // Malformed input is refused before any comparison.
    for bad in ["", "12345a!", "١٢٣٤٥٦", &"1".repeat(100)] {
        assert_eq!(
            h.tf.verify_login(LoginContext::none(), ch.token(), bad)
                .await
                .unwrap_err()
                .code(),
            "malformed_code"
        );
    }
    assert_eq!(take(&h), []);
    h.tf.verify_login(LoginContext::none(), ch.token(), &w)
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);
    // The challenge is void now: refused without comparing, even the right code.
    let e =
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await
            .unwrap_err();
    assert_eq!(e.code(), "too_many_attempts");
    assert_eq!(take(&h), []);
}

#[tokio::test]
async fn lockout_records_each_rejection_then_one_locked_out_and_escalates() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    take(&h);
    let mut expected = Vec::new();
    for round in 0..2u64 {
        for _ in 0..2 {
            let ch = h.challenge("u1").await;
            for _ in 0..5 {
                let w = wrong(&h.totp(&secret));
                h.tf.verify_login(LoginContext::none(), ch.token(), &w)
                    .await
                    .unwrap_err();
            }
        }
        // Ten rejections; the tenth sets the lock: 15 minutes, then 30.
        let lock = 15 * 60 * (1 << round);
        expected.extend(std::iter::repeat_n(rejected("u1"), 10));
        expected.push(Event::LockedOut {
            user: "u1".into(),
            until: Timestamp::from_unix_secs(h.now() + lock),
        });
        assert_eq!(take(&h), expected);
        expected.clear();
        // While locked, nothing is compared and nothing recorded.
        assert_eq!(
            h.tf.begin_login(LoginContext::none(), "u1")
                .await
                .unwrap_err()
                .code(),
            "locked"
        );
        assert_eq!(take(&h), []);
        h.advance(lock);
    }
}

#[tokio::test]
async fn a_replayed_totp_code_records_a_replay() {
    let h = Harness::new();
    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    let code = h.totp(setup.secret_base32());
    h.tf.totp().confirm_setup("u1", &code).await.unwrap();
    take(&h);
    let ch = h.challenge("u1").await;
    let e =
        h.tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap_err();
    assert_eq!(e.code(), "code_reused");
    // The replay, and the failed attempt it is.
    assert_eq!(
        take(&h),
        [Event::ReplayRejected { user: "u1".into() }, rejected("u1")]
    );
    // The same in the step-up flows.
    let e =
        h.tf.backup_codes()
            .regenerate("u1", &code)
            .await
            .unwrap_err();
    assert_eq!(e.code(), "code_reused");
    assert_eq!(
        take(&h),
        [Event::ReplayRejected { user: "u1".into() }, rejected("u1")]
    );
}

#[tokio::test]
async fn disable_records_the_factor_disabled() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    take(&h);
    h.tf.account()
        .disable("u1", "wrong password", &h.totp(&secret))
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);
    h.tf.account()
        .disable("u1", PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    assert_eq!(take(&h), [Event::FactorDisabled { user: "u1".into() }]);
}

#[tokio::test]
async fn disable_with_a_backup_code_records_its_use() {
    let h = Harness::new();
    let (_, backup) = h.enroll_totp("u1").await;
    take(&h);
    h.tf.account()
        .disable("u1", PASSWORD, &backup[0])
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [used("u1", 9), Event::FactorDisabled { user: "u1".into() }]
    );
}

#[tokio::test]
async fn regeneration_records_it_and_the_backup_code_it_used() {
    let h = Harness::new();
    let (secret, backup) = h.enroll_totp("u1").await;
    take(&h);
    h.tf.backup_codes()
        .regenerate("u1", &h.totp(&secret))
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [Event::BackupCodesRegenerated { user: "u1".into() }]
    );
    // The old set is void: a rejection.
    h.tf.backup_codes()
        .regenerate("u1", &backup[0])
        .await
        .unwrap_err();
    assert_eq!(take(&h), [rejected("u1")]);

    h.advance(30);
    let codes =
        h.tf.backup_codes()
            .regenerate("u1", &h.totp(&secret))
            .await
            .unwrap();
    take(&h);
    h.tf.backup_codes()
        .regenerate("u1", codes[2].expose())
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [
            used("u1", 9),
            Event::BackupCodesRegenerated { user: "u1".into() }
        ]
    );
}

#[tokio::test]
async fn a_step_up_code_is_sent_and_answers_regeneration() {
    let h = Harness::new();
    h.enroll_email("u1", "a@example.com").await;
    take(&h);
    // Email-only users hold no backup codes until they regenerate.
    h.tf.account()
        .send_step_up_code("u1", SecurityAction::RegenerateBackupCodes)
        .await
        .unwrap();
    assert_eq!(take(&h), [sent("u1")]);
    let code = h.last_code("a@example.com");
    h.tf.backup_codes().regenerate("u1", &code).await.unwrap();
    assert_eq!(
        take(&h),
        [Event::BackupCodesRegenerated { user: "u1".into() }]
    );
}

#[tokio::test]
async fn a_code_sent_is_recorded_only_when_it_was_sent() {
    let (h, f) = faults::harness(Policy::default());
    h.enroll_email("u1", "a@example.com").await;
    let (_, _) = h.enroll_totp("u1").await;
    take(&h);
    let ch = h.challenge("u1").await;
    assert_eq!(take(&h), [sent("u1")]);
    // Within the cooldown: refused, nothing sent.
    assert_eq!(
        h.tf.resend_code(ch.token()).await.unwrap_err().code(),
        "cooldown"
    );
    assert_eq!(take(&h), []);
    h.advance(60);
    f.arm(faults::Mode::Off, true);
    h.tf.resend_code(ch.token()).await.unwrap();
    assert_eq!(take(&h), [sent("u1")]);
    // A delivery that fails (the same call as above): no CodeSent.
    let mail_at = f.trace().iter().position(|n| *n == "mail.send").unwrap() as u64 + 1;
    h.advance(60);
    f.arm(
        faults::Mode::Once {
            at: mail_at,
            after: false,
        },
        true,
    );
    assert_eq!(
        h.tf.resend_code(ch.token()).await.unwrap_err().code(),
        "delivery_failed"
    );
    f.disarm();
    assert_eq!(take(&h), []);
    // A failed send starts no cooldown: a resend at once works.
    h.tf.resend_code(ch.token()).await.unwrap();
    assert_eq!(take(&h), [sent("u1")]);
}

#[tokio::test]
async fn events_name_the_user_they_concern() {
    let h = Harness::new();
    let (s1, _) = h.enroll_totp("u1").await;
    let (s2, _) = h.enroll_totp("u2").await;
    take(&h);
    let c1 = h.challenge("u1").await;
    let c2 = h.challenge("u2").await;
    // u2's code on u1's challenge is u1's failure.
    h.tf.verify_login(LoginContext::none(), c1.token(), &h.totp(&s2))
        .await
        .unwrap_err();
    h.tf.verify_login(LoginContext::none(), c2.token(), &h.totp(&s2))
        .await
        .unwrap();
    h.tf.verify_login(LoginContext::none(), c1.token(), &h.totp(&s1))
        .await
        .unwrap();
    assert_eq!(
        take(&h),
        [
            rejected("u1"),
            verified("u2", Method::Totp),
            verified("u1", Method::Totp)
        ]
    );
}
