//! `ChallengeToken::parse` on arbitrary text (and on text behind the right prefix), then `locate`
//! on whatever parsed: never a panic, a parsed token always locates, and the tag it names is the
//! first 12 bytes of the token's body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use twofactor::testing::fuzz::{challenge_locate, challenge_token};
use twofactor::{ChallengeToken, Keyring};

fn keys() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(|| Keyring::new([7; 32]))
}

/// The base64url value of a character, as a plain table lookup.
fn b64(c: u8) -> Option<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u8)
}

/// A strict unpadded base64url decoder: the reference the parser is checked against.
fn decode(body: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in body.bytes() {
        bits = bits << 6 | u32::from(b64(c)?);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    // Leftover bits must be zero and fewer than a whole character.
    (n < 6 && bits == 0).then_some(out)
}

fn check(text: &str) {
    let expected = text
        .strip_prefix("tfc2_")
        .filter(|body| body.len() == 59)
        .and_then(decode)
        .filter(|bytes| bytes.len() == 44);
    match ChallengeToken::parse(text) {
        Ok(token) => {
            let bytes = expected.unwrap_or_else(|| panic!("accepted {text:?}"));
            assert_eq!(token.as_str(), text);
            let (tag, id) = challenge_locate(&token, keys()).expect("a parsed token locates");
            assert_eq!(&tag[..], &bytes[..12]);
            let again = ChallengeToken::parse(token.as_str()).expect("a token parses again");
            assert_eq!(challenge_locate(&again, keys()), Some((tag, id)));
        }
        Err(_) => assert!(expected.is_none(), "refused {text:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
        check(&format!("tfc2_{text}"));
    }
    // A fresh token for a tag from the input parses and locates to that tag.
    if let Some(tag) = data.first_chunk::<12>() {
        let token = challenge_token(tag);
        let parsed = ChallengeToken::parse(token.as_str()).expect("a fresh token parses");
        let (found, _) = challenge_locate(&parsed, keys()).expect("a fresh token locates");
        assert_eq!(&found, tag);
    }
});
