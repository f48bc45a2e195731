//! `OtpAuthUri::parse` on arbitrary text: never a panic, and a round trip for whatever parses.
//! A URI with an issuer is written again with `otpauth_uri`; one without (the library writes none)
//! is written by hand in the same shape. Either way the result parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::{totp::otpauth_uri, totp::OtpAuthUri};

/// RFC 3986 percent-encoding, unreserved characters kept.
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn same(a: &OtpAuthUri, b: &OtpAuthUri) -> bool {
    a.issuer() == b.issuer()
        && a.account() == b.account()
        && a.secret().as_bytes() == b.secret().as_bytes()
        && a.params() == b.params()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = OtpAuthUri::parse(text) else {
        return;
    };
    let n = uri.secret().as_bytes().len();
    assert!(
        (16..=64).contains(&n),
        "a secret of {n} bytes from {text:?}"
    );
    assert!(!uri.account().is_empty() && uri.account().len() <= 256);
    assert!(!uri.account().contains(':'));
    assert!(uri.params().validate().is_ok());
    let written = match uri.issuer() {
        Some(issuer) => {
            assert!(!issuer.is_empty() && issuer.len() <= 256 && !issuer.contains(':'));
            otpauth_uri(issuer, uri.account(), uri.secret(), uri.params())
                .unwrap_or_else(|e| panic!("{text:?} parsed but cannot be written: {e}"))
        }
        None => format!(
            "otpauth://totp/{}?secret={}&algorithm={}&digits={}&period={}",
            pct(uri.account()),
            uri.secret().to_base32(),
            uri.params().algorithm.name(),
            uri.params().digits,
            uri.params().period
        ),
    };
    let again = OtpAuthUri::parse(&written)
        .unwrap_or_else(|e| panic!("{text:?} written as {written:?} does not parse: {e}"));
    assert!(
        same(&uri, &again),
        "{text:?} written as {written:?} reads differently"
    );
});
