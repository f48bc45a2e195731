//! `code::normalize` (what a user types as a code) and `backup::canonical` (a backup code), on
//! arbitrary text: never a panic, and each result checked against a plain restatement of its rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::testing::fuzz::{backup_canonical, is_numeric, normalize};

/// Crockford's base32 alphabet, as backup codes use it.
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn check_canonical(input: &str) {
    let Some(code) = backup_canonical(input) else {
        return;
    };
    let code = code.expose();
    assert_eq!(code.len(), 12, "{input:?} -> {code:?}");
    assert!(
        code.chars().all(|c| CROCKFORD.contains(c)),
        "{input:?} -> {code:?}"
    );
    // Canonical output is a fixed point.
    let again = backup_canonical(code).expect("a canonical code is a backup code");
    assert_eq!(again.expose(), code);
    // Every character of the input maps to the one in the same place.
    let kept: Vec<char> = input.chars().filter(|c| *c != '-' && *c != ' ').collect();
    assert_eq!(kept.len(), 12);
    for (typed, out) in kept.iter().zip(code.chars()) {
        let expected = match typed.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        };
        assert_eq!(expected, out, "{input:?} -> {code:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let kept: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let acceptable = text.len() <= 64
        && text.is_ascii()
        && !kept.is_empty()
        && kept.bytes().all(|b| b.is_ascii_alphanumeric());
    match normalize(text) {
        Ok(code) => {
            assert!(acceptable, "accepted {text:?}");
            let s = code.expose();
            assert_eq!(s, kept, "{text:?}");
            // Normalised text is a fixed point.
            assert_eq!(
                normalize(s).expect("normalised input normalises").expose(),
                s
            );
            for digits in 0..=10 {
                let numeric = s.len() == digits as usize && s.bytes().all(|b| b.is_ascii_digit());
                assert_eq!(
                    is_numeric(&code, digits),
                    numeric,
                    "{s:?} with {digits} digits"
                );
            }
            check_canonical(s);
        }
        Err(_) => assert!(!acceptable, "refused {text:?}"),
    }
    // The canonical form is also total on raw text.
    check_canonical(text);
});
