//! No panic on any input (SECURITY.md: INV-8; CHK-16, CHK-23, CHK-27): arbitrary text
//! (Unicode digits, huge input, NUL, emoji, near-miss tokens) into every entry point that takes
//! text gets a typed error — a 4xx one, since the stores are healthy — or a legitimate success,
//! never a panic; times up to `u64::MAX` on the clock and huge `Policy` values either are refused
//! by `Policy::validate` or run every flow without a panic.

use std::time::Duration;
use twofactor::LoginContext;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use twofactor::{
    clock::Timestamp, totp::otpauth_uri, totp::qr_svg, totp::TotpParams, totp::TotpSecret,
    ChallengeToken, Error, Keyring, LoginStep, Policy,
};

use crate::support::{code_in, Harness, PASSWORD};

/// Text a client might send: random Unicode, digits of other scripts, NUL, emoji, huge runs,
/// near-misses of codes, backup codes and tokens.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[0-9 \\-\t]{0,16}",
        "[0-9A-Za-z\\- ]{10,20}",
        "tfc2_[A-Za-z0-9_\\-]{56,62}",
        "tfc2_\\PC{59}",
        Just("١٢٣٤٥٦".to_owned()),
        Just("１２３４５６".to_owned()),
        Just("१२३४५६".to_owned()),
        Just("߀߁߂߃߄߅".to_owned()),
        Just("12345٦".to_owned()),
        Just("\0\0\0\0\0\0".to_owned()),
        Just("123\u{0}456".to_owned()),
        Just("😀😀😀😀😀😀".to_owned()),
        Just("ＡＢＣＤ-ＥＦＧＨ-ＪＫＭＮ".to_owned()),
        Just(String::new()),
        (0usize..200_000).prop_map(|n| "9".repeat(n)),
        (1usize..50_000).prop_map(|n| "😀".repeat(n)),
        (1usize..50_000).prop_map(|n| "1-".repeat(n)),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A typed error a client's input may cause: a 4xx with a machine code.
fn client_error(e: &Error, input: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        (400..500).contains(&e.http_status()),
        "{e:?} for {:?}",
        input.chars().take(50).collect::<String>()
    );
    prop_assert!(!e.code().is_empty());
    Ok(())
}

/// Whether the input can only be malformed: not ASCII, or longer than any code.
fn surely_malformed(input: &str) -> bool {
    !input.is_ascii() || input.len() > 64
}

#[test]
fn verify_login_takes_any_input_with_a_real_or_a_garbage_token() {
    let rt = rt();
    let h = Harness::new();
    let (_, backup) = rt.block_on(h.enroll_totp("u1"));
    rt.block_on(h.enroll_email("u1", "a@example.com"));
    let garbage = ChallengeToken::parse(&format!("tfc2_{}", "A".repeat(59))).unwrap();
    runner(256)
        .run(&(nasty(), nasty()), |(input, token_text)| {
            // A fresh day: no lock, a live challenge.
            h.advance(25 * 3600);
            let ch = rt.block_on(h.challenge("u1"));
            for token in [ch.token(), &garbage] {
                match rt.block_on(h.tf.verify_login(LoginContext::none(), token, &input)) {
                    Ok(v) => prop_assert!(
                        token == ch.token() && !surely_malformed(&input),
                        "accepted {input:?}: {v:?}"
                    ),
                    Err(e) => {
                        client_error(&e, &input)?;
                        if surely_malformed(&input) {
                            prop_assert_eq!(e.code(), "malformed_code");
                        }
                    }
                }
            }
            // Any token text: parsed or refused as an invalid challenge, never a panic.
            match ChallengeToken::parse(&token_text) {
                Ok(t) => {
                    prop_assert!(token_text.starts_with("tfc2_"));
                    prop_assert_eq!(t.as_str(), token_text.as_str());
                    let r = rt.block_on(h.tf.verify_login(LoginContext::none(), &t, "123456"));
                    prop_assert_eq!(r.unwrap_err().code(), "invalid_challenge");
                    let r = rt.block_on(h.tf.resend_code(&t));
                    prop_assert_eq!(r.unwrap_err().code(), "invalid_challenge");
                }
                Err(e) => prop_assert_eq!(e.code(), "invalid_challenge"),
            }
            Ok(())
        })
        .unwrap();
    // Still whole: the right answer works, a backup code the random inputs never spelled.
    h.advance(25 * 3600);
    let ch = rt.block_on(h.challenge("u1"));
    let v = rt
        .block_on(h.tf.verify_login(LoginContext::none(), ch.token(), &backup[0]))
        .unwrap();
    assert_eq!(v.method(), Some(twofactor::Method::BackupCode));
    assert_eq!(v.backup_codes_remaining(), 9);
}

/// Unicode digits are not digits here, not even when they spell the right code.
#[tokio::test]
async fn unicode_digits_of_the_right_code_are_malformed() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let right = h.totp(&secret);
    for zero in ['\u{0660}', '\u{FF10}', '\u{0966}', '\u{07C0}', '\u{1D7CE}'] {
        let spelled: String = right
            .chars()
            .map(|d| char::from_u32(zero as u32 + d.to_digit(10).unwrap()).unwrap())
            .collect();
        assert_eq!(
            h.tf.verify_login(LoginContext::none(), ch.token(), &spelled)
                .await
                .unwrap_err()
                .code(),
            "malformed_code",
            "{spelled}"
        );
    }
    // Malformed input costs no attempt: the right code still works.
    h.tf.verify_login(LoginContext::none(), ch.token(), &right)
        .await
        .unwrap();
}

#[test]
fn confirmations_and_disable_take_any_input() {
    let rt = rt();
    let h = Harness::new();
    rt.block_on(h.enroll_totp("u1"));
    runner(128)
        .run(&(nasty(), nasty()), |(a, b)| {
            h.advance(25 * 3600);
            // A pending TOTP setup lives at most an hour: a new one each day (after a chance
            // confirmation, this answers `AlreadyEnrolled`).
            let _ = rt.block_on(h.tf.totp().start_setup("u2", "bob"));
            rt.block_on(h.tf.email().start_setup("u3", "c@example.com"))
                .unwrap();
            rt.block_on(h.tf.email().send_verification_code("u4", "d@example.com"))
                .unwrap();
            let results = [
                rt.block_on(h.tf.totp().confirm_setup("u2", &a)).map(|_| ()),
                rt.block_on(h.tf.email().confirm_setup("u3", &a))
                    .map(|_| ()),
                rt.block_on(h.tf.email().verify_registration_code("u4", &a))
                    .map(|_| ()),
                rt.block_on(h.tf.account().disable("u1", &b, &a)),
                rt.block_on(h.tf.account().disable("u1", PASSWORD, &a)),
                rt.block_on(h.tf.backup_codes().regenerate("u1", &a))
                    .map(|_| ()),
            ];
            for r in results {
                match r {
                    // Only a right code (one in 10^6 for a random six-digit string) succeeds.
                    Ok(()) => prop_assert!(!surely_malformed(&a), "accepted {a:?}"),
                    Err(e) => client_error(&e, &a)?,
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn user_ids_and_addresses_take_any_input() {
    let rt = rt();
    let h = Harness::new();
    runner(256)
        .run(&(nasty(), nasty()), |(user, address)| {
            h.advance(25 * 3600);
            match rt.block_on(h.tf.email().start_setup("u5", &address)) {
                Ok(()) => {
                    // Accepted addresses are plain: no header injection, no spaces.
                    prop_assert!(address.is_ascii() && address.len() <= 254);
                    prop_assert!(!address.chars().any(|c| c.is_ascii_control() || c == ' '));
                    prop_assert!(address.contains('@'));
                    let m = h.mailer.last_to(&address).unwrap();
                    prop_assert!(code_in(&m.text).is_some());
                }
                Err(e) => client_error(&e, &address)?,
            }
            for r in [
                rt.block_on(h.tf.begin_login(LoginContext::none(), &user))
                    .map(|s| {
                        assert!(matches!(s, LoginStep::Complete(_)));
                    }),
                rt.block_on(h.tf.account().status(&user))
                    .map(|s| assert!(!s.enabled)),
                rt.block_on(h.tf.email().send_verification_code(&user, "e@example.com")),
                rt.block_on(h.tf.email().verify_registration_code(&user, "123456"))
                    .map(|_| ()),
                rt.block_on(
                    h.tf.account()
                        .send_step_up_code(&user, twofactor::mail::SecurityAction::AddFactor),
                ),
            ] {
                if let Err(e) = r {
                    client_error(&e, &user)?;
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn totp_setup_and_otpauth_uris_take_any_account_name() {
    let rt = rt();
    let h = Harness::new();
    let secret = TotpSecret::generate(20).unwrap();
    runner(64)
        .run(&(nasty(), nasty()), |(account, issuer)| {
            // The URI percent-encodes whatever it accepts, and refuses ':' and control characters.
            match otpauth_uri(&issuer, &account, &secret, TotpParams::default()) {
                Ok(uri) => {
                    prop_assert!(uri.is_ascii());
                    let label = uri
                        .strip_prefix("otpauth://totp/")
                        .unwrap()
                        .split('?')
                        .next()
                        .unwrap();
                    prop_assert_eq!(label.matches(':').count(), 1);
                    prop_assert!(!uri.contains(' '));
                }
                Err(e) => prop_assert_eq!(e.code(), "invalid_input"),
            }
            match rt.block_on(h.tf.totp().start_setup("u1", &account)) {
                Ok(setup) => {
                    prop_assert!(setup.otpauth_uri().is_ascii());
                    prop_assert!(setup.qr_svg().unwrap().contains("<svg"));
                }
                Err(e) => client_error(&e, &account)?,
            }
            Ok(())
        })
        .unwrap();
    // Data too long for a QR code is an error, not a panic.
    assert_eq!(
        qr_svg(&"x".repeat(10_000)).unwrap_err().code(),
        "invalid_input"
    );
    #[cfg(feature = "qr-png")]
    assert_eq!(
        twofactor::totp::qr_png(&"x".repeat(10_000))
            .unwrap_err()
            .code(),
        "invalid_input"
    );
}

#[test]
fn keys_and_secrets_parse_any_input() {
    runner(1024)
        .run(&nasty(), |text| {
            match Keyring::from_base64(&text) {
                Ok(k) => prop_assert_eq!(k.key_id().len(), 8),
                Err(e) => {
                    prop_assert_eq!(e.code(), "invalid_config");
                    if text.trim().len() >= 8 {
                        prop_assert!(!e.to_string().contains(text.trim()));
                    }
                }
            }
            match TotpSecret::from_base32(&text) {
                Ok(s) => prop_assert!((16..=64).contains(&s.as_bytes().len())),
                Err(e) => prop_assert!(
                    matches!(e.code(), "invalid_input" | "invalid_config"),
                    "{e:?}"
                ),
            }
            Ok(())
        })
        .unwrap();
    // Near misses of valid values.
    let key = Keyring::generate_base64();
    for bad in [
        &key[..42],
        &key[1..],
        &format!("{key}AAAA"),
        "====",
        "=",
        "",
    ] {
        assert!(Keyring::from_base64(bad).is_err(), "{bad}");
    }
    for bad in ["JBSWY3DPEHPK3PX", "JBSWY3DPEHPK3PXP1", "JBSWY3DP!HPK3PXP"] {
        assert!(TotpSecret::from_base32(bad).is_err(), "{bad}");
    }
}

/// Counts the steps that succeeded; a step that failed must have failed with a 4xx.
#[derive(Default)]
struct Tally(usize);

impl Tally {
    fn add<T>(&mut self, r: Result<T, Error>) {
        match r {
            Ok(_) => self.0 += 1,
            Err(e) => assert!(e.http_status() < 500, "{e:?}"),
        }
    }
}

/// Runs every flow for two users at the clock's current time; returns how many steps succeeded.
async fn every_flow(h: &Harness) -> usize {
    let mut t = Tally::default();
    let tf = &h.tf;
    let code_to = |to: &str| {
        h.mailer
            .last_to(to)
            .and_then(|m| code_in(&m.text))
            .unwrap_or_default()
    };
    t.add(tf.account().status("u1").await);
    let setup = tf.totp().start_setup("u1", "alice").await.unwrap();
    let secret = setup.secret_base32().to_owned();
    let backup = setup.backup_codes()[0].expose().to_owned();
    t.add(tf.totp().confirm_setup("u1", &h.totp(&secret)).await);
    t.add(tf.email().start_setup("u1", "a@example.com").await);
    t.add(
        tf.email()
            .confirm_setup("u1", &code_to("a@example.com"))
            .await,
    );
    t.add(
        tf.email()
            .send_verification_code("u2", "b@example.com")
            .await,
    );
    t.add(
        tf.email()
            .verify_registration_code("u2", &code_to("b@example.com"))
            .await,
    );
    h.advance(30);
    for input in [h.totp(&secret), backup, "000000".to_owned()] {
        match tf.begin_login(LoginContext::none(), "u1").await {
            Ok(LoginStep::Challenge(ch)) => {
                t.add(tf.resend_code(ch.token()).await);
                t.add(
                    tf.verify_login(LoginContext::none(), ch.token(), &input)
                        .await,
                );
            }
            r => t.add(r),
        }
    }
    // A lockout.
    for _ in 0..12 {
        if let Ok(LoginStep::Challenge(ch)) = tf.begin_login(LoginContext::none(), "u1").await {
            t.add(
                tf.verify_login(LoginContext::none(), ch.token(), "12-34-56")
                    .await,
            );
        }
    }
    h.advance(u64::MAX / 4);
    t.add(tf.backup_codes().regenerate("u1", &h.totp(&secret)).await);
    t.add(
        tf.account()
            .send_step_up_code("u1", twofactor::mail::SecurityAction::DisableTwoFactor)
            .await,
    );
    t.add(tf.account().disable("u1", PASSWORD, &h.totp(&secret)).await);
    t.add(tf.account().status("u1").await);
    t.0
}

#[tokio::test]
async fn times_up_to_u64_max_do_not_panic() {
    const MAX: u64 = u64::MAX;
    for t in [
        0,
        1,
        1 << 31,
        1 << 32,
        20_000_000_000,
        1 << 62,
        1 << 63,
        MAX - 365 * 86400,
        MAX - 3600,
        MAX - 300,
        MAX - 30,
        MAX - 1,
        MAX,
    ] {
        let h = Harness::new();
        h.clock.set(Timestamp::from_unix_secs(t));
        let ok = every_flow(&h).await;
        // Far from the end of time every flow works; near it, records expire at once and flows
        // refuse, but nothing panics.
        if t <= 1 << 63 {
            assert!(ok >= 10, "only {ok} steps succeeded at {t}");
        }
        // The clock saturates.
        h.clock.advance(Duration::MAX);
        assert_eq!(h.now(), MAX);
        h.tf.account().status("u1").await.unwrap();
    }
}

/// Durations from zero to the largest, with the edges likely.
fn secs() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (1u64..4000).prop_map(Duration::from_secs),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), 1u32..20, Just(u32::MAX), any::<u32>()]
}

#[test]
fn huge_policy_values_are_refused_or_saturate() {
    let rt = rt();
    // Each field keeps its default or takes a value from zero to the largest.
    let d = || prop::option::weighted(0.1, secs());
    let n = || prop::option::weighted(0.1, count());
    let strategy = (
        (d(), d(), d(), d(), d()),
        (d(), d(), d(), d(), d()),
        (n(), n(), n(), n(), n(), n()),
    );
    let accepted = std::cell::Cell::new(0);
    runner(64)
        .run(&strategy, |(d1, d2, c)| {
            let mut p = Policy::default();
            let set = |field: &mut Duration, v: Option<Duration>| *field = v.unwrap_or(*field);
            set(&mut p.email_code_ttl, d1.0);
            set(&mut p.resend_cooldown, d1.1);
            set(&mut p.send_window, d1.2);
            set(&mut p.challenge_ttl, d1.3);
            set(&mut p.totp_period, d1.4);
            set(&mut p.lockout_base, d2.0);
            set(&mut p.lockout_max, d2.1);
            set(&mut p.failure_window, d2.2);
            set(&mut p.totp_setup_ttl, d2.3);
            set(&mut p.lockout_base, d2.4);
            let setn = |field: &mut u32, v: Option<u32>| *field = v.unwrap_or(*field);
            setn(&mut p.max_sends, c.0);
            setn(&mut p.challenge_max_attempts, c.1);
            setn(&mut p.code_max_attempts, c.2);
            setn(&mut p.lockout_threshold, c.3);
            setn(&mut p.backup_code_count, c.4);
            setn(&mut p.email_code_digits, c.5);
            // Lock durations saturate for every level.
            for level in [0, 1, 31, 63, 64, 1000, u32::MAX] {
                prop_assert!(p.lock_duration(level) <= p.lockout_max.max(p.lockout_base));
            }
            match p.validate() {
                Err(e) => prop_assert_eq!(e.code(), "invalid_config"),
                Ok(()) => {
                    accepted.set(accepted.get() + 1);
                    let h = Harness::with_policy(p);
                    rt.block_on(every_flow(&h));
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!("{} of 64 random policies accepted and run", accepted.get());

    // And the extremes that validate accepts, on purpose: every duration that has no cap at its
    // largest (the TOTP setup's at its cap), every count at its largest allowed value.
    let mut p = Policy::default();
    p.resend_cooldown = Duration::MAX;
    p.send_window = Duration::MAX;
    p.lockout_base = Duration::MAX;
    p.lockout_max = Duration::MAX;
    p.failure_window = Duration::MAX;
    p.totp_setup_ttl = Policy::MAX_TOTP_SETUP_TTL;
    p.max_sends = u32::MAX;
    p.lockout_threshold = 1;
    p.validate().unwrap();
    let h = Harness::with_policy(p.clone());
    rt.block_on(every_flow(&h));
    assert_eq!(p.lock_duration(u32::MAX), Duration::from_secs(u64::MAX));
    // The caps validate enforces.
    for (field, value) in [
        ("email_code_ttl", Duration::from_secs(601)),
        ("challenge_ttl", Duration::MAX),
    ] {
        let mut p = Policy::default();
        match field {
            "email_code_ttl" => p.email_code_ttl = value,
            _ => p.challenge_ttl = value,
        }
        assert_eq!(p.validate().unwrap_err().code(), "invalid_config");
    }
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    /// Any text into the phone parser: an error, or a canonical E.164 number that parses to
    /// itself and prints masked. Plausible numbers with spaces and dashes parse.
    #[test]
    fn phone_numbers_parse_or_refuse_without_panic(
        input in prop_oneof![nasty(), "\\+[1-9][0-9 \\-]{6,20}", "[+0-9 ()\\-.]{0,24}"],
    ) {
        match twofactor::text::PhoneNumber::parse(&input) {
            Ok(n) => {
                let e = n.as_e164();
                let digits = &e[1..];
                prop_assert!(e.starts_with('+'));
                prop_assert!((8..=15).contains(&digits.len()), "{e}");
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'));
                let same = twofactor::text::PhoneNumber::parse(e).unwrap();
                prop_assert_eq!(same.as_e164(), e);
                let shown = format!("{n} {n:?}");
                prop_assert!(!shown.contains(digits), "{shown}");
            }
            Err(why) => prop_assert!(why.code().starts_with("phone_")),
        }
    }
}
