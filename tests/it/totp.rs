//! TOTP secrets, the verification window, otpauth URIs and QR codes, through the public API, with
//! `oathtool` and `zbarimg` as outside witnesses when they are installed.

use std::process::Command;

use proptest::prelude::*;
use rand::Rng;
use twofactor::{
    totp::otpauth_uri, totp::qr_svg, totp::totp_code, totp::OtpAuthUri, totp::TotpAlgorithm,
    totp::TotpParams, totp::TotpSecret, totp::TotpVerifier, Error,
};

use crate::support::tools::{have, oathtool};

const ALGORITHMS: [TotpAlgorithm; 3] = [
    TotpAlgorithm::Sha1,
    TotpAlgorithm::Sha256,
    TotpAlgorithm::Sha512,
];

fn params(algorithm: TotpAlgorithm, digits: u32, period: u64) -> TotpParams {
    TotpParams {
        algorithm,
        digits,
        period,
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[test]
fn a_15_byte_secret_is_refused_everywhere() {
    assert!(matches!(
        TotpSecret::from_bytes(vec![7; 15]),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        TotpSecret::generate(15),
        Err(Error::InvalidConfig(_))
    ));
    // 15 bytes in base32 (24 characters).
    let b32 = "AAAQEAYEAUDAOCAJBIFQYDIO";
    assert!(TotpSecret::from_base32(b32).is_err());
    let uri = format!("otpauth://totp/Acme:alice?secret={b32}&issuer=Acme");
    assert!(matches!(
        OtpAuthUri::parse(&uri),
        Err(Error::InvalidInput(_))
    ));
    // The limits themselves: 16 and 64 bytes are fine, 65 is not.
    assert!(TotpSecret::from_bytes(vec![7; 16]).is_ok());
    assert!(TotpSecret::from_bytes(vec![7; 64]).is_ok());
    assert!(TotpSecret::from_bytes(vec![7; 65]).is_err());
}

#[test]
fn generated_secrets_are_160_bits_random_and_round_trip_through_base32() {
    let a = TotpSecret::generate(20).unwrap();
    let b = TotpSecret::generate(20).unwrap();
    assert_eq!(a.as_bytes().len(), 20);
    assert_ne!(a.as_bytes(), b.as_bytes());
    let text = a.to_base32();
    assert_eq!(text.len(), 32);
    assert!(!text.contains('='));
    let back = TotpSecret::from_base32(&text.to_lowercase()).unwrap();
    assert_eq!(back.as_bytes(), a.as_bytes());
    // Spaces (as apps show secrets) and padding are tolerated.
    let spaced: String = text
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i % 4 == 0 && i > 0).then_some(' ').into_iter().chain([c]))
        .collect();
    assert_eq!(
        TotpSecret::from_base32(&spaced).unwrap().as_bytes(),
        a.as_bytes()
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let b32 = secret.to_base32();
    let verifier = TotpVerifier::new(&secret, TotpParams::default()).unwrap();
    let uri =
        OtpAuthUri::parse(&otpauth_uri("Acme", "alice", &secret, TotpParams::default()).unwrap())
            .unwrap();
    for shown in [
        format!("{secret:?}"),
        format!("{verifier:?}"),
        format!("{uri:?}"),
    ] {
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains(&b32), "{shown}");
        assert!(!shown.contains("1234567890"), "{shown}");
        assert!(!shown.contains("49, 50, 51"), "{shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Codes and the verification window

#[test]
fn times_near_u64_max_do_not_panic() {
    let secret = TotpSecret::generate(20).unwrap();
    for alg in ALGORITHMS {
        for period in [0, 1, 30, 3600, u64::MAX] {
            for time in [0, 1, u64::MAX - 31, u64::MAX - 1, u64::MAX] {
                let p = params(alg, 6, period);
                let code = totp_code(secret.as_bytes(), p, time);
                assert_eq!(code.len(), 6);
                if p.validate().is_ok() {
                    let v = TotpVerifier::new(&secret, p).unwrap();
                    let step = time / period;
                    assert_eq!(v.code(time), code);
                    assert_eq!(v.verify(time, 0, &code), Some(step), "{time} / {period}");
                    let hit = v.verify(time, 1, &code).unwrap();
                    assert!(hit.abs_diff(step) <= 1);
                    let _ = v.verify(time, u32::MAX, "000000");
                }
            }
        }
    }
    // At the very last step the window saturates: the code of the previous step is still
    // accepted, and nothing wraps round to step 0.
    let v = TotpVerifier::new(&secret, params(TotpAlgorithm::Sha1, 6, 1)).unwrap();
    let prev = v.code(u64::MAX - 1);
    if prev != v.code(u64::MAX) {
        assert_eq!(v.verify(u64::MAX, 1, &prev), Some(u64::MAX - 1));
    }
    let zero = v.code(0);
    if zero != v.code(u64::MAX) && zero != prev {
        assert_eq!(v.verify(u64::MAX, 1, &zero), None);
    }
}

#[test]
fn odd_digit_counts_never_panic() {
    let s = b"12345678901234567890";
    for digits in [0, 1, 5, 9, 10, 11, 100, u32::MAX] {
        let code = totp_code(s, params(TotpAlgorithm::Sha1, digits, 30), 59);
        assert_eq!(code.len(), digits.clamp(1, 10) as usize, "digits {digits}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
    let secret = TotpSecret::from_bytes(s.to_vec()).unwrap();
    for digits in [0, 5, 9, 10] {
        assert!(matches!(
            TotpVerifier::new(&secret, params(TotpAlgorithm::Sha1, digits, 30)),
            Err(Error::InvalidConfig(_))
        ));
    }
    for period in [0, 3601] {
        assert!(TotpVerifier::new(&secret, params(TotpAlgorithm::Sha1, 6, period)).is_err());
    }
}

#[test]
fn malformed_codes_are_never_accepted() {
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let v = TotpVerifier::new(&secret, params(TotpAlgorithm::Sha1, 8, 30)).unwrap();
    assert_eq!(v.verify(59, 0, "94287082"), Some(1));
    for bad in [
        "",
        "9428708",
        "942870820",
        " 94287082",
        "94287082 ",
        "9428 7082",
        "+4287082",
        "-4287082",
        "9428708a",
        "٩٤٢٨٧٠٨٢",         // Arabic-Indic digits
        "９４２８７０８２", // full-width digits
        "94287082\0",
    ] {
        assert_eq!(v.verify(59, 1, bad), None, "{bad:?}");
    }
    let long = "9".repeat(100_000);
    assert_eq!(v.verify(59, 1, &long), None);
}

/// Checks the window for one secret and time: T-1, T, T+1 accepted with skew 1 (and only T with
/// skew 0); T-2 and T+2 never. Returns how many far codes collided with a code of the window.
fn check_window(secret: &TotpSecret, p: TotpParams, time: u64) -> u32 {
    let v = TotpVerifier::new(secret, p).unwrap();
    let step = time / p.period;
    let code_at = |s: u64| totp_code(secret.as_bytes(), p, s * p.period);
    let window: Vec<String> = (step - 1..=step + 1).map(code_at).collect();
    let mut collisions = 0;
    for code in &window {
        // Equal codes in one window are possible but rare: the current step wins, then the
        // previous, then the next.
        let first = [step, step - 1, step + 1]
            .into_iter()
            .find(|t| code_at(*t) == *code)
            .unwrap();
        assert_eq!(v.verify(time, 1, code), Some(first));
    }
    assert_eq!(v.verify(time, 0, &window[1]), Some(step));
    for s in [step - 1, step + 1] {
        let code = code_at(s);
        if code != window[1] {
            assert_eq!(v.verify(time, 0, &code), None, "skew 0 took step {s}");
        }
    }
    for far in [step - 2, step + 2, step - 3, step + 3] {
        let code = code_at(far);
        for skew in [1, 2, u32::MAX] {
            match v.verify(time, skew, &code) {
                None => {}
                Some(hit) => {
                    // Only a coincidence with a code inside the window may match, and then the
                    // step reported is that window step, never the far one.
                    assert!(hit.abs_diff(step) <= 1, "step {hit} accepted");
                    assert_eq!(code_at(hit), code);
                    collisions += 1;
                }
            }
        }
    }
    collisions
}

#[test]
fn a_code_shared_by_two_steps_is_taken_for_the_current_one() {
    // With the RFC seed, steps 910737 and 910738 (30 s each) both have the code 911617.
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let v = TotpVerifier::new(&secret, TotpParams::default()).unwrap();
    let (a, b) = (910_737u64, 910_738u64);
    assert_eq!(v.code(a * 30), "911617");
    assert_eq!(v.code(b * 30), "911617");
    // At step b the code is b's, not the previous step's: after a login at step a recorded a,
    // the same digits at step b are a fresh code, not a replay.
    assert_eq!(v.verify(b * 30, 1, "911617"), Some(b));
    assert_eq!(v.verify(a * 30, 1, "911617"), Some(a));
    // One step later, only the previous step (b) still matches.
    assert_eq!(v.verify((b + 1) * 30, 1, "911617"), Some(b));
    assert_eq!(v.verify((b + 2) * 30, 1, "911617"), None);
}

#[test]
fn the_window_is_one_step_either_side_over_many_random_secrets() {
    let mut rng = rand::thread_rng();
    let mut collisions = 0;
    let mut runs = 0;
    for alg in ALGORITHMS {
        for digits in [6, 8] {
            for _ in 0..400 {
                let secret = TotpSecret::generate(20).unwrap();
                let time = rng.gen_range(100..1u64 << 40);
                collisions += check_window(&secret, params(alg, digits, 30), time);
                runs += 1;
            }
        }
    }
    // 2400 secrets × 4 far codes × 3 skews: a 6-digit coincidence has odds of 3 in 10^6 per try.
    assert!(collisions <= 12, "{collisions} coincidences in {runs} runs");
}

#[test]
fn verify_agrees_with_totp_code_and_totp_rs_over_random_secrets() {
    let mut rng = rand::thread_rng();
    for alg in ALGORITHMS {
        let other = match alg {
            TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
            TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
            _ => totp_rs::Algorithm::SHA512,
        };
        for _ in 0..200 {
            let len = rng.gen_range(16..=64);
            let secret = TotpSecret::generate(len).unwrap();
            let time: u64 = rng.gen_range(0..1u64 << 50);
            let digits = rng.gen_range(6..=8);
            let p = params(alg, digits, 30);
            let ours = totp_code(secret.as_bytes(), p, time);
            let theirs = totp_rs::TOTP::new_unchecked(
                other,
                digits as usize,
                0,
                30,
                secret.as_bytes().to_vec(),
            )
            .generate(time);
            assert_eq!(ours, theirs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// otpauth URIs

#[test]
fn the_uri_follows_the_key_uri_format() {
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let uri = otpauth_uri(
        "Acme Co",
        "alice smith@example.com",
        &secret,
        TotpParams::default(),
    )
    .unwrap();
    assert_eq!(
        uri,
        "otpauth://totp/Acme%20Co:alice%20smith%40example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co\
         &algorithm=SHA1&digits=6&period=30"
    );
    assert!(!uri.contains('+'));
    // A secret whose base32 would be padded (16 bytes = 26 characters + 6 '='): unpadded.
    let sixteen = TotpSecret::from_bytes(vec![0xA5; 16]).unwrap();
    let uri = otpauth_uri("Acme", "bob", &sixteen, TotpParams::default()).unwrap();
    let secret_param = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    assert_eq!(secret_param.len(), 26);
    assert!(!secret_param.contains('='));
    // Other parameters as configured.
    let p = params(TotpAlgorithm::Sha512, 8, 60);
    let uri = otpauth_uri("Acme", "bob", &sixteen, p).unwrap();
    assert!(
        uri.ends_with("&algorithm=SHA512&digits=8&period=60"),
        "{uri}"
    );
}

#[test]
fn a_colon_in_issuer_or_account_is_refused() {
    let secret = TotpSecret::generate(20).unwrap();
    let p = TotpParams::default();
    for (issuer, account) in [
        ("Acme:Corp", "alice"),
        ("Acme", "alice:1"),
        (":", "alice"),
        ("Acme", ":"),
        ("", "alice"),
        ("Acme", ""),
        (" Acme", "alice"),
        ("Acme", "alice "),
        ("Acme\n", "alice"),
        ("Acme", "ali\u{7}ce"),
    ] {
        assert!(
            matches!(
                otpauth_uri(issuer, account, &secret, p),
                Err(Error::InvalidInput(_))
            ),
            "{issuer:?} / {account:?}"
        );
    }
    let long = "a".repeat(257);
    assert!(otpauth_uri(&long, "alice", &secret, p).is_err());
    assert!(otpauth_uri("Acme", &long, &secret, p).is_err());
    assert!(otpauth_uri("Acme", &long[..256], &secret, p).is_ok());
    // Parameters no app reads are refused too.
    assert!(matches!(
        otpauth_uri("Acme", "alice", &secret, params(TotpAlgorithm::Sha1, 9, 30)),
        Err(Error::InvalidConfig(_))
    ));
}

const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn parse_reads_what_apps_and_other_servers_write() {
    // Defaults: SHA1, 6 digits, 30 s; issuer only in the label.
    let u = OtpAuthUri::parse(&format!("otpauth://totp/Acme:alice?secret={B32}")).unwrap();
    assert_eq!(u.issuer(), Some("Acme"));
    assert_eq!(u.account(), "alice");
    assert_eq!(u.params(), TotpParams::default());
    assert_eq!(u.secret().as_bytes(), b"12345678901234567890");

    // Issuer only as a parameter, an encoded colon, spaces before the account, a lower-case
    // padded secret (16 bytes: 26 characters and 6 of padding), scheme and type in capitals,
    // unknown parameters.
    let u = OtpAuthUri::parse(&format!(
        "OTPAUTH://TOTP/Big%20Bank%3A%20%20bob%40example.com?secret={}%3D%3D%3D%3D%3D%3D\
         &issuer=Big%20Bank&algorithm=sha256&digits=8&period=60\
         &image=https%3A%2F%2Fexample.com%2Fa.png",
        B32[..26].to_lowercase()
    ))
    .unwrap();
    assert_eq!(u.issuer(), Some("Big Bank"));
    assert_eq!(u.account(), "bob@example.com");
    assert_eq!(u.params(), params(TotpAlgorithm::Sha256, 8, 60));
    assert_eq!(u.secret().as_bytes(), b"1234567890123456");
    // Padding where a secret needs none is not padding.
    assert!(OtpAuthUri::parse(&format!("otpauth://totp/a?secret={B32}%3D%3D")).is_err());

    let u = OtpAuthUri::parse(&format!("otpauth://totp/carol?issuer=Acme&secret={B32}")).unwrap();
    assert_eq!(u.issuer(), Some("Acme"));
    assert_eq!(u.account(), "carol");
    let u = OtpAuthUri::parse(&format!("otpauth://totp/carol?secret={B32}")).unwrap();
    assert_eq!(u.issuer(), None);

    // Unicode, encoded and raw.
    let u = OtpAuthUri::parse(&format!(
        "otpauth://totp/%C3%9Cber:J%C3%BCrgen?secret={B32}&issuer=Über"
    ))
    .unwrap();
    assert_eq!(u.issuer(), Some("Über"));
    assert_eq!(u.account(), "Jürgen");
    // Lower-case hex escapes; `+` is a literal plus, not a space.
    let u = OtpAuthUri::parse(&format!("otpauth://totp/%c3%9cber:a+b%40c?secret={B32}")).unwrap();
    assert_eq!(u.issuer(), Some("Über"));
    assert_eq!(u.account(), "a+b@c");

    // Codes from the parsed URI are the codes of the secret.
    let u = OtpAuthUri::parse(&format!("otpauth://totp/A:b?secret={B32}&digits=8")).unwrap();
    let v = TotpVerifier::new(u.secret(), u.params()).unwrap();
    assert_eq!(v.code(59), "94287082");
}

#[test]
fn parse_refuses_bad_uris_with_typed_errors() {
    let cases = [
        String::new(),
        "otpauth://".into(),
        format!("http://totp/A:b?secret={B32}"),
        format!("otpauth://hotp/A:b?secret={B32}&counter=1"),
        format!("otpauth://totp?secret={B32}"),
        "otpauth://totp/A:b".into(),
        "otpauth://totp/A:b?issuer=A".into(),
        "otpauth://totp/A:b?secret=".into(),
        "otpauth://totp/A:b?secret=not-base32!".into(),
        "otpauth://totp/A:b?secret=GEZDGNBVGY3TQOJQ".into(), // 10 bytes
        format!("otpauth://totp/A:b:c?secret={B32}"),
        format!("otpauth://totp/A%3Ab%3Ac?secret={B32}"),
        format!("otpauth://totp/A:?secret={B32}"),
        format!("otpauth://totp/:b?secret={B32}"),
        format!("otpauth://totp/?secret={B32}"),
        format!("otpauth://totp/A:b?secret={B32}&issuer=B"),
        format!("otpauth://totp/A:b?secret={B32}&issuer=A:B"),
        format!("otpauth://totp/A:b?secret={B32}&secret={B32}"),
        format!("otpauth://totp/A:b?secret={B32}&digits=6&digits=6"),
        format!("otpauth://totp/A:b?secret={B32}&algorithm=MD5"),
        format!("otpauth://totp/A:b?secret={B32}&digits=5"),
        format!("otpauth://totp/A:b?secret={B32}&digits=9"),
        format!("otpauth://totp/A:b?secret={B32}&digits=six"),
        format!("otpauth://totp/A:b?secret={B32}&digits=99999999999999999999"),
        format!("otpauth://totp/A:b?secret={B32}&period=0"),
        format!("otpauth://totp/A:b?secret={B32}&period=-30"),
        format!("otpauth://totp/A%:b?secret={B32}"),
        format!("otpauth://totp/A%zz:b?secret={B32}"),
        format!("otpauth://totp/A%FF:b?secret={B32}"),
        // Escapes the percent-encoding crate alone would pass through as they are.
        format!("otpauth://totp/A%4:b?secret={B32}"),
        format!("otpauth://totp/A%4g:b?secret={B32}"),
        format!("otpauth://totp/A%%41:b?secret={B32}"),
        format!("otpauth://totp/A:b%?secret={B32}"),
        format!("otpauth://totp/A:b?secret={B32}&issuer=A%2"),
        format!("otpauth://totp/A:b?secret={B32}%"),
        format!("otpauth://totp/A:b?secret={B32}&digits=%36%"),
        format!("otpauth://totp/A:b?secret={B32}&algorithm=SHA%"),
        format!("otpauth://totp/A%0A:b?secret={B32}"),
        format!("otpauth://totp/A:b?secret={B32}#frag"),
        format!("otpauth://totp/A:b?secret={B32}&issuer=%E2%82"),
        format!("otpauth://totp/{}:b?secret={B32}", "a".repeat(257)),
        format!("otpauth://totp/A:b?secret={B32}&x={}", "y".repeat(5000)),
    ];
    for uri in &cases {
        match OtpAuthUri::parse(uri) {
            Err(Error::InvalidInput(reason)) => {
                // The reason never repeats the secret.
                assert!(!reason.contains(B32), "{reason}");
            }
            other => panic!("{uri:?} gave {other:?}"),
        }
    }
}

/// Issuer or account names the builder accepts: any non-control characters, Unicode included,
/// without `:` and without outer whitespace.
fn label_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,40}",
        "[a-zA-Z0-9 @._%&=?#/+-]{1,40}",
        "[\u{e9}\u{fc}\u{4e2d}\u{6587}\u{1f510} a-z]{1,20}",
    ]
    .prop_filter("no ':' or outer whitespace", |s| {
        !s.contains(':')
            && !s.starts_with(char::is_whitespace)
            && !s.ends_with(char::is_whitespace)
            && s.len() <= 256
    })
}

fn any_params() -> impl Strategy<Value = TotpParams> {
    (0..3usize, 6..=8u32, 1..=3600u64).prop_map(|(a, digits, period)| TotpParams {
        algorithm: ALGORITHMS[a],
        digits,
        period,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn build_then_parse_round_trips(
        issuer in label_part(),
        account in label_part(),
        secret in proptest::collection::vec(any::<u8>(), 16..=64),
        p in any_params(),
    ) {
        let secret = TotpSecret::from_bytes(secret).unwrap();
        let uri = otpauth_uri(&issuer, &account, &secret, p).unwrap();
        prop_assert!(uri.is_ascii());
        prop_assert!(uri.starts_with("otpauth://totp/"));
        prop_assert!(!uri.contains(' '));
        prop_assert_eq!(uri.matches(':').count(), 2, "only the scheme's and the label's colon");
        let parsed = OtpAuthUri::parse(&uri).unwrap();
        prop_assert_eq!(parsed.issuer(), Some(issuer.as_str()));
        prop_assert_eq!(parsed.account(), account.as_str());
        prop_assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
        prop_assert_eq!(parsed.params(), p);
    }

    #[test]
    fn a_colon_anywhere_in_a_label_is_refused(
        issuer in label_part(),
        account in label_part(),
        at in 0usize..40,
        in_issuer in any::<bool>(),
    ) {
        let secret = TotpSecret::generate(20).unwrap();
        let target = if in_issuer { &issuer } else { &account };
        let chars: Vec<char> = target.chars().collect();
        let at = at.min(chars.len());
        let with_colon: String =
            chars[..at].iter().chain([':'].iter()).chain(chars[at..].iter()).collect();
        let (i, a) = if in_issuer { (with_colon.as_str(), account.as_str()) }
                     else { (issuer.as_str(), with_colon.as_str()) };
        prop_assert!(otpauth_uri(i, a, &secret, TotpParams::default()).is_err());
    }

    #[test]
    fn from_base32_never_panics(s in any::<String>()) {
        let _ = TotpSecret::from_base32(&s);
    }

    #[test]
    fn from_base32_never_panics_on_near_base32(s in "[A-Za-z2-7= 01890-]{0,300}") {
        if let Ok(secret) = TotpSecret::from_base32(&s) {
            prop_assert!((16..=64).contains(&secret.as_bytes().len()));
        }
    }

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = OtpAuthUri::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_uris(
        label in "[A-Za-z0-9%:/?&=#+ \u{e9}\u{1f510}]{0,40}",
        query in "[A-Za-z0-9%:/?&=#+ \u{e9}]{0,120}",
        kind in prop_oneof![Just("totp"), Just("TOTP"), Just("hotp"), Just("")],
    ) {
        let _ = OtpAuthUri::parse(&format!("otpauth://{kind}/{label}?{query}"));
        let _ = OtpAuthUri::parse(&format!("otpauth://{kind}/{label}?secret={B32}&{query}"));
        let _ = OtpAuthUri::parse(&format!("otpauth://{kind}/{label}{query}"));
    }

    #[test]
    fn parse_never_panics_on_mangled_good_uris(
        cut in 0usize..200,
        insert in any::<char>(),
        at in 0usize..200,
    ) {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let good = otpauth_uri("Ac me", "jürgen@example.com", &secret, TotpParams::default())
            .unwrap();
        let chars: Vec<char> = good.chars().collect();
        let cut = cut.min(chars.len());
        let at = at.min(cut);
        let mangled: String =
            chars[..at].iter().chain([insert].iter()).chain(chars[at..cut].iter()).collect();
        let _ = OtpAuthUri::parse(&mangled);
    }
}

// ---------------------------------------------------------------------------------------------
// Outside witnesses: oathtool and zbarimg (Debian packages `oathtool` and `zbar-tools`)

#[test]
fn codes_match_oathtool() {
    if !have("oathtool", "oathtool") {
        return;
    }
    let mut rng = rand::thread_rng();
    let mut times: Vec<u64> = vec![0, 59, 1_111_111_109, 2_000_000_000, 20_000_000_000];
    times.extend((0..5).map(|_| rng.gen_range(0..1u64 << 36)));
    let mut checked = 0;
    for (mode, alg) in [
        ("--totp", TotpAlgorithm::Sha1),
        ("--totp=sha256", TotpAlgorithm::Sha256),
        ("--totp=sha512", TotpAlgorithm::Sha512),
    ] {
        for (i, time) in times.iter().enumerate() {
            let secret = TotpSecret::generate(if i % 2 == 0 { 20 } else { 32 }).unwrap();
            let b32 = secret.to_base32();
            for digits in [6, 8] {
                let ours = totp_code(secret.as_bytes(), params(alg, digits, 30), *time);
                assert_eq!(
                    ours,
                    oathtool(mode, digits, &b32, *time),
                    "{mode} at {time}"
                );
                let v = TotpVerifier::new(&secret, params(alg, digits, 30)).unwrap();
                assert_eq!(v.verify(*time, 1, &ours), Some(time / 30));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 60);
}

#[cfg(feature = "qr-png")]
static NEXT_FILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Decodes the QR code in `png` with zbarimg.
#[cfg(feature = "qr-png")]
fn zbar_decode(png: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!(
        "twofactor-qr-{}-{}.png",
        std::process::id(),
        NEXT_FILE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&path, png).unwrap();
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&path)
        .output()
        .expect("zbarimg runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "zbarimg found no code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[cfg(feature = "qr-png")]
#[test]
fn the_qr_png_decodes_to_the_uri() {
    use twofactor::totp::qr_png;
    let secret = TotpSecret::generate(20).unwrap();
    let uris = [
        otpauth_uri(
            "Acme Co",
            "alice@example.com",
            &secret,
            TotpParams::default(),
        )
        .unwrap(),
        otpauth_uri(
            "Ünïcödé 中文",
            "jürgen+2fa@example.com",
            &TotpSecret::generate(64).unwrap(),
            params(TotpAlgorithm::Sha512, 8, 60),
        )
        .unwrap(),
    ];
    for uri in &uris {
        let png = qr_png(uri).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = qr_svg(uri).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
    if !have("zbarimg", "zbar-tools") {
        return;
    }
    for uri in &uris {
        let decoded = zbar_decode(&qr_png(uri).unwrap());
        assert_eq!(&decoded, uri);
        let parsed = OtpAuthUri::parse(&decoded).unwrap();
        assert!(parsed.issuer().is_some());
    }
}

#[test]
fn too_much_data_for_a_qr_code_is_an_error() {
    let huge = "x".repeat(10_000);
    #[cfg(feature = "qr-png")]
    assert!(matches!(
        twofactor::totp::qr_png(&huge),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(qr_svg(&huge), Err(Error::InvalidInput(_))));
}
