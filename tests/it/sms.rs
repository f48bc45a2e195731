//! The text (SMS) channel beside email: phone enrolment proven by a code, login, resend and
//! step-up by text, one send budget across both channels, purpose and user isolation, bad
//! numbers, and no code in `Debug`, errors or logs.

use std::sync::Arc;
use twofactor::LoginContext;

use twofactor::{
    async_trait, error::DeliveryError, error::PhoneError, mail::MessagePurpose,
    mail::SecurityAction, store::MemoryEnrollmentStore, store::MemoryOtpStore,
    testing::RecordingTextSender, text::PhoneNumber, text::TextMessage, text::TextSender, Error,
    Keyring, LoginStep, Method, TwoFactorService,
};

use crate::support::{code_in, wrong, Harness, PASSWORD};

const PHONE: &str = "+491701234567";

/// A service on memory stores with the default event sink (the log) and no text sender yet.
fn builder() -> twofactor::service::ServiceBuilder {
    TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(twofactor::testing::RecordingMailer::new())
}

#[tokio::test]
async fn sms_setup_proves_the_number_before_it_becomes_a_factor() {
    let h = Harness::new();
    h.tf.sms()
        .start_setup("u1", "+49 170 123-4567")
        .await
        .unwrap();
    let text = h.texts.last_to(PHONE).unwrap();
    assert_eq!(text.purpose, MessagePurpose::PhoneSetupCode);
    assert!(text.body.starts_with("Acme: "), "{}", text.body);
    assert!(h.mailer.messages().is_empty(), "nothing mailed");
    assert!(
        !h.tf.account().status("u1").await.unwrap().enabled,
        "not a factor yet"
    );
    let code = h.last_text_code(PHONE);
    assert_eq!(code.len(), 6);
    assert!(matches!(
        h.tf.sms().confirm_setup("u1", &wrong(&code)).await,
        Err(Error::InvalidCode {
            attempts_remaining: Some(4)
        })
    ));
    let number = h.tf.sms().confirm_setup("u1", &code).await.unwrap();
    assert_eq!(number.as_e164(), PHONE);
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.methods, vec![Method::Sms]);
    assert_eq!(status.phone.as_deref(), Some("+49•••••••567"));
    assert!(
        h.tf.sms().confirm_setup("u1", &code).await.is_err(),
        "single use"
    );
    assert!(matches!(
        h.tf.sms().start_setup("u1", "+15550000000").await,
        Err(Error::AlreadyEnrolled)
    ));
    // Adding a phone to an account with a factor needs a fresh one.
    h.enroll_totp("u2").await;
    h.advance(3600);
    assert!(matches!(
        h.tf.sms().start_setup("u2", PHONE).await,
        Err(Error::ReauthRequired)
    ));
}

#[tokio::test]
async fn bad_numbers_are_refused_with_a_reason_and_never_panic() {
    let h = Harness::new();
    let cases: Vec<(String, PhoneError)> = vec![
        ("".into(), PhoneError::Empty),
        ("0170 1234567".into(), PhoneError::MissingPlus),
        ("+0170 1234567".into(), PhoneError::LeadingZero),
        ("+49 (170) 1234567".into(), PhoneError::NotDigits),
        ("+49١٧٠١٢٣٤٥٦٧".into(), PhoneError::NotDigits),
        ("+4917012345\0".into(), PhoneError::NotDigits),
        ("+123".into(), PhoneError::TooShort),
        ("+1234567890123456".into(), PhoneError::TooLong),
        ("9".repeat(1 << 20), PhoneError::TooLong),
    ];
    for (input, why) in cases {
        let e = h.tf.sms().start_setup("u1", &input).await.unwrap_err();
        assert!(matches!(e, Error::InvalidPhone(w) if w == why), "{e:?}");
        assert_eq!(e.code(), "invalid_phone");
        assert_eq!(e.public_code(), "invalid_phone");
        assert_eq!(e.http_status(), 400);
    }
    // Random bytes: an error or a number, never a panic.
    for n in 0..2000u32 {
        let len = (n % 40) as usize;
        let s: String = (0..len)
            .map(|_| char::from_u32(rand::random::<u32>() % 0x300).unwrap_or('+'))
            .collect();
        let _ = PhoneNumber::parse(&s);
        let _ = PhoneNumber::parse(&format!("+{s}"));
    }
    assert!(h.texts.texts().is_empty());
}

#[tokio::test]
async fn without_a_text_sender_phone_setup_is_a_configuration_error() {
    let tf = builder().build().unwrap();
    let e = tf.sms().start_setup("u1", PHONE).await.unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
}

#[tokio::test]
async fn login_by_text_code_and_resend() {
    let h = Harness::new();
    h.enroll_sms("u1", PHONE).await;
    h.texts.clear();
    let ch = h.challenge("u1").await;
    assert_eq!(ch.methods(), &[Method::Sms]);
    assert!(ch.text_sent() && !ch.email_sent());
    let first = h.last_text_code(PHONE);
    assert_eq!(
        h.texts.last_to(PHONE).unwrap().purpose,
        MessagePurpose::LoginCode
    );
    // A resend within the cooldown is refused, then replaces the code.
    assert!(matches!(
        h.tf.resend_code(ch.token()).await,
        Err(Error::Cooldown { .. })
    ));
    h.advance(61);
    h.tf.resend_code(ch.token()).await.unwrap();
    assert_eq!(h.texts.texts().len(), 2);
    let second = h.last_text_code(PHONE);
    if first != second {
        assert!(matches!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &first)
                .await,
            Err(Error::InvalidCode { .. })
        ));
    }
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &second)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::Sms));
    assert!(
        h.tf.verify_login(LoginContext::none(), ch.token(), &second)
            .await
            .is_err(),
        "once"
    );
    assert!(h.mailer.messages().is_empty(), "nothing mailed");
}

#[tokio::test]
async fn with_email_and_phone_the_code_goes_by_email() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    // Right after the email confirmation the factor is fresh: the phone may be added.
    h.enroll_sms("u1", PHONE).await;
    let status = h.tf.account().status("u1").await.unwrap();
    assert_eq!(status.methods, vec![Method::Email, Method::Sms]);
    h.texts.clear();
    h.advance(61);
    let ch = h.challenge("u1").await;
    assert_eq!(ch.methods(), &[Method::Email]);
    assert!(ch.email_sent() && !ch.text_sent());
    assert!(h.texts.texts().is_empty());
}

/// One send budget per user across email and text: sends on either channel count, and a
/// refused send on one is refused on the other.
#[tokio::test]
async fn one_send_budget_across_email_and_text() {
    let h = Harness::new();
    let max = h.tf.policy().max_sends;
    assert!(max >= 3);
    // Before any factor: registration mails and phone-setup texts share the budget.
    for _ in 0..max - 1 {
        h.tf.email()
            .send_verification_code("u1", "alice@example.com")
            .await
            .unwrap();
        h.advance(61);
    }
    h.tf.sms().start_setup("u1", PHONE).await.unwrap();
    h.advance(61);
    assert!(matches!(
        h.tf.sms().start_setup("u1", PHONE).await,
        Err(Error::RateLimited { .. })
    ));
    assert!(matches!(
        h.tf.email()
            .send_verification_code("u1", "alice@example.com")
            .await,
        Err(Error::RateLimited { .. })
    ));
    assert_eq!(h.texts.texts().len(), 1);
    assert_eq!(h.mailer.messages().len(), (max - 1) as usize);

    // Logins by text spend the budget an email send then lacks.
    h.enroll_sms("u2", PHONE).await;
    for _ in 0..max - 1 {
        h.challenge("u2").await;
    }
    assert!(matches!(
        h.tf.email()
            .send_verification_code("u2", "bob@example.com")
            .await,
        Err(Error::RateLimited { .. })
    ));
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u2").await,
        Err(Error::RateLimited { .. })
    ));
}

/// A text-code success resets neither the send budget nor an active lock.
#[tokio::test]
async fn a_text_success_resets_no_other_limit() {
    let h = Harness::new();
    let max = h.tf.policy().max_sends;
    h.enroll_sms("u1", PHONE).await;
    let mut last = None;
    for _ in 0..max - 1 {
        last = Some(h.challenge("u1").await);
    }
    let ch = last.unwrap();
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_text_code(PHONE))
        .await
        .unwrap();
    assert!(matches!(
        h.tf.email()
            .send_verification_code("u1", "alice@example.com")
            .await,
        Err(Error::RateLimited { .. })
    ));

    // The lock: two challenges' worth of wrong codes lock the user; the right text code of an
    // open challenge is then refused and lifts nothing.
    let h = Harness::new();
    h.enroll_sms("u3", PHONE).await;
    let threshold = h.tf.policy().lockout_threshold;
    let per = h.tf.policy().challenge_max_attempts;
    let open = h.challenge("u3").await;
    let code = h.last_text_code(PHONE);
    let mut failures = 0;
    while failures < threshold {
        let c = h.challenge("u3").await;
        for _ in 0..per.min(threshold - failures) {
            let _ =
                h.tf.verify_login(LoginContext::none(), c.token(), &wrong(&code))
                    .await;
            failures += 1;
        }
    }
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), open.token(), &code)
            .await,
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u3").await,
        Err(Error::Locked { .. })
    ));
}

/// Codes are bound to their purpose and user: a text code is no email code, no login code is a
/// setup code, and one user's code is not another's.
#[tokio::test]
async fn codes_are_bound_to_purpose_and_user() {
    let h = Harness::new();
    h.tf.sms().start_setup("u1", PHONE).await.unwrap();
    let sms_code = h.last_text_code(PHONE);
    assert!(h.tf.email().confirm_setup("u1", &sms_code).await.is_err());
    assert!(h
        .tf
        .email()
        .verify_registration_code("u1", &sms_code)
        .await
        .is_err());
    assert!(h.tf.sms().confirm_setup("u2", &sms_code).await.is_err());
    h.tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let mail_code = h.last_code("alice@example.com");
    if mail_code != sms_code {
        assert!(h.tf.sms().confirm_setup("u1", &mail_code).await.is_err());
    }
    let number = h.tf.sms().confirm_setup("u1", &sms_code).await.unwrap();
    assert_eq!(number.as_e164(), PHONE);

    // A login code by text is not a setup code, and not another user's login code.
    h.enroll_sms("u9", "+15551234567").await;
    let c9 = h.challenge("u9").await;
    let login_code = h.last_text_code("+15551234567");
    assert!(h.tf.sms().confirm_setup("u9", &login_code).await.is_err());
    h.enroll_sms("u8", "+15557654321").await;
    let c8 = h.challenge("u8").await;
    let other = h.last_text_code("+15557654321");
    if other != login_code {
        assert!(h
            .tf
            .verify_login(LoginContext::none(), c9.token(), &other)
            .await
            .is_err());
    }
    assert_eq!(
        h.tf.verify_login(LoginContext::none(), c8.token(), &other)
            .await
            .unwrap()
            .user(),
        "u8"
    );
}

/// Step-up by text, and disable removes the phone.
#[tokio::test]
async fn step_up_by_text_and_disable_removes_the_phone() {
    let h = Harness::new();
    h.enroll_sms("u1", PHONE).await;
    h.advance(3600);
    h.tf.account()
        .send_step_up_code("u1", SecurityAction::DisableTwoFactor)
        .await
        .unwrap();
    let text = h.texts.last_to(PHONE).unwrap();
    assert_eq!(text.purpose, MessagePurpose::SecurityCode);
    assert!(text.body.contains("turn off"), "{}", text.body);
    let code = h.last_text_code(PHONE);
    assert!(matches!(
        h.tf.account().disable("u1", "wrong password", &code).await,
        Err(Error::InvalidPassword)
    ));
    h.tf.account().disable("u1", PASSWORD, &code).await.unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.phone, None);
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await.unwrap(),
        LoginStep::Complete(_)
    ));
    // The phone can be enrolled again, proven anew.
    h.advance(61);
    h.enroll_sms("u1", PHONE).await;
}

struct FailingSender;

#[async_trait]
impl TextSender for FailingSender {
    async fn send(&self, _: &TextMessage) -> Result<(), DeliveryError> {
        Err(DeliveryError::transient("vendor down"))
    }
}

/// A failed text leaves no usable code and no cooldown, like a failed mail.
#[tokio::test]
async fn a_failed_text_fails_closed_and_lifts_the_cooldown() {
    let texts = RecordingTextSender::new();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    struct Switch(RecordingTextSender, Arc<std::sync::atomic::AtomicBool>);
    #[async_trait]
    impl TextSender for Switch {
        async fn send(&self, t: &TextMessage) -> Result<(), DeliveryError> {
            if self.1.load(std::sync::atomic::Ordering::SeqCst) {
                return FailingSender.send(t).await;
            }
            self.0.send(t).await
        }
    }
    let switch = Switch(texts.clone(), failing.clone());
    let tf = builder()
        .text_sender(Box::new(switch) as Box<dyn TextSender>)
        .build()
        .unwrap();
    let e = tf.sms().start_setup("u1", PHONE).await.unwrap_err();
    assert!(matches!(e, Error::Delivery(_)) && e.is_transient(), "{e:?}");
    assert!(matches!(
        tf.sms().confirm_setup("u1", "123456").await,
        Err(Error::NothingPending)
    ));
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    tf.sms().start_setup("u1", PHONE).await.unwrap();
    let code = code_in(&texts.last_to(PHONE).unwrap().body.replace(' ', "\n")).unwrap();
    tf.sms().confirm_setup("u1", &code).await.unwrap();
}

/// No code or whole number in `Debug`, in errors, or in the log of a whole text run.
#[tokio::test]
async fn no_code_or_number_in_debug_errors_or_logs() {
    let capture = crate::support::logs::Capture::default();
    let guard = capture.install();
    let texts = RecordingTextSender::new();
    let tf = builder().text_sender(texts.clone()).build().unwrap();
    let last = |texts: &RecordingTextSender| {
        code_in(&texts.last_to(PHONE).unwrap().body.replace(' ', "\n")).unwrap()
    };
    tf.sms().start_setup("u1", PHONE).await.unwrap();
    let mut codes = vec![last(&texts)];
    let mut errors = vec![tf
        .sms()
        .confirm_setup("u1", &wrong(&codes[0]))
        .await
        .unwrap_err()];
    let number = tf.sms().confirm_setup("u1", &codes[0]).await.unwrap();
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!("a challenge");
    };
    codes.push(last(&texts));
    errors.push(tf.resend_code(ch.token()).await.unwrap_err());
    errors.push(
        tf.verify_login(LoginContext::none(), ch.token(), &wrong(&codes[1]))
            .await
            .unwrap_err(),
    );
    let v = tf
        .verify_login(LoginContext::none(), ch.token(), &codes[1])
        .await
        .unwrap();
    drop(guard);
    let logs = capture.text();
    let status = tf.account().status("u1").await.unwrap();
    let debug = [
        format!("{number:?} {number} {v:?} {status:?} {ch:?}"),
        format!("{:?}", texts.texts()),
        format!("{errors:?}"),
        errors.iter().map(|e| e.to_string()).collect(),
    ];
    for text in debug.iter().chain([&logs]) {
        for code in &codes {
            assert!(!text.contains(code.as_str()), "code in {text}");
        }
        assert!(!text.contains("1701234567"), "number in {text}");
    }
    assert!(logs.contains("u1"), "the capture saw the run:\n{logs}");
}

/// `examples/text_http.rs` runs to the end: an HTTP sender over reqwest against its mock vendor
/// enrols a phone, signs in by text, and fails closed when the vendor is down.
#[test]
fn the_http_text_example_runs() {
    let Some(bin) = crate::support::tools::example_binary("text_http") else {
        return;
    };
    let out = std::process::Command::new(&bin)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shown in [
        "phone enrolled: +49•••••••567",
        "signed in by sms",
        "vendor down: delivery_failed (503)",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("1701234567"), "whole number printed");
}

/// Events name the text factor; a text login may trust the device.
#[tokio::test]
async fn events_and_trusted_device_after_a_text_login() {
    use twofactor::events::Event;
    let h = Harness::new();
    h.enroll_sms("u1", PHONE).await;
    let e = h.events.events();
    let started = |m: &Event| matches!(m, Event::FactorSetupStarted { user, method: Method::Sms } if user == "u1");
    let enabled =
        |m: &Event| matches!(m, Event::FactorEnabled { user, method: Method::Sms } if user == "u1");
    assert!(e.iter().any(started) && e.iter().any(enabled), "{e:?}");
    h.events.clear();
    let ch = h.challenge("u1").await;
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_text_code(PHONE))
            .await
            .unwrap();
    let e = h.events.events();
    assert!(
        e.iter().any(|m| matches!(
            m,
            Event::Verified {
                method: Method::Sms,
                ..
            }
        )),
        "{e:?}"
    );
    let trust = h.tf.devices().trust(&v, "phone", None).await.unwrap();
    let step =
        h.tf.begin_login(&LoginContext::new().device(trust.token.clone()), "u1")
            .await
            .unwrap();
    assert!(matches!(step, LoginStep::Complete(v) if v.method() == Some(Method::TrustedDevice)));
}

/// Concurrent resends of a text challenge: one text, as for email; attempts are not reset.
#[tokio::test]
async fn concurrent_resends_send_one_text() {
    let h = Harness::new();
    h.enroll_sms("u1", PHONE).await;
    let ch = h.challenge("u1").await;
    let code = h.last_text_code(PHONE);
    let _ =
        h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&code))
            .await;
    h.advance(61);
    h.texts.clear();
    let results = futures_join(&h, &ch, 50).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(h.texts.texts().len(), 1);
    let fresh = h.last_text_code(PHONE);
    // The wrong guess before the resend still counts: with 4 more the challenge is spent, and
    // the right code comes too late.
    let cap = h.tf.policy().challenge_max_attempts;
    for _ in 1..cap {
        let _ =
            h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&fresh))
                .await;
    }
    assert!(h
        .tf
        .verify_login(LoginContext::none(), ch.token(), &fresh)
        .await
        .is_err());
}

async fn futures_join(h: &Harness, ch: &twofactor::Challenge, n: usize) -> Vec<Result<(), Error>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let tf = h.tf.clone();
        let token = ch.token().clone();
        set.spawn(async move { tf.resend_code(&token).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// An account recovery tells the phone factor too, at once and once before it takes effect.
#[tokio::test]
async fn account_recovery_tells_the_phone() {
    let h = Harness::new();
    h.enroll_sms("u1", PHONE).await;
    h.texts.clear();
    let effective = h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    let purposes = |h: &Harness| -> Vec<MessagePurpose> {
        h.texts.texts().iter().map(|t| t.purpose).collect()
    };
    assert_eq!(purposes(&h), vec![MessagePurpose::RecoveryRequested]);
    assert!(h.texts.texts()[0].body.contains("recovery"));
    let reminder = h.tf.policy().recovery_reminder.as_secs();
    h.advance(effective.as_unix_secs() - h.now() - reminder + 1);
    h.tf.recovery().process("u1").await.unwrap();
    h.tf.recovery().process("u1").await.unwrap();
    assert_eq!(
        purposes(&h),
        vec![
            MessagePurpose::RecoveryRequested,
            MessagePurpose::RecoveryReminder
        ],
        "the reminder once"
    );
    // A text login cancels it.
    let ch = h.challenge("u1").await;
    h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_text_code(PHONE))
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
}
