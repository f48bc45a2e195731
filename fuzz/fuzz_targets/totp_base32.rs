//! `TotpSecret::from_base32` on arbitrary text: never a panic, and exactly the inputs a strict
//! RFC 4648 reading accepts (case-insensitive, spaces ignored, `=` only as the correct trailing
//! padding), decoded to the same bytes; the secret's own base32 reads back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::totp::TotpSecret;

/// The reference: a plain RFC 4648 base32 reading of the text, or `None`. Bits left over after
/// the last whole byte are ignored, as most decoders do.
fn reference(text: &str) -> Option<Vec<u8>> {
    if text.len() > 256 {
        return None;
    }
    let cleaned: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let data_len = cleaned
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(0, |i| i + 1);
    let (data, pad) = cleaned.split_at(data_len);
    // Only these remainders end on a byte boundary: 2, 4, 5 and 7 characters carry 1 to 4 bytes.
    let expected_pad = match data.len() % 8 {
        0 => 0,
        2 => 6,
        4 => 4,
        5 => 3,
        7 => 1,
        _ => return None,
    };
    if !pad.is_empty() && pad.len() != expected_pad {
        return None;
    }
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        bits = bits << 5 | u64::from(v);
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    (16..=64).contains(&out.len()).then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expected = reference(text);
    match TotpSecret::from_base32(text) {
        Ok(secret) => {
            let bytes = expected.unwrap_or_else(|| panic!("accepted {text:?}"));
            assert_eq!(secret.as_bytes(), &bytes[..], "{text:?}");
            let written = secret.to_base32();
            assert!(!written.contains('='));
            let again = TotpSecret::from_base32(&written).expect("a secret's own base32 reads");
            assert_eq!(again.as_bytes(), secret.as_bytes());
            // The padded form of the same secret reads too.
            let padded = format!("{written}{}", "=".repeat((8 - written.len() % 8) % 8));
            let again = TotpSecret::from_base32(&padded).expect("padded base32 reads");
            assert_eq!(again.as_bytes(), secret.as_bytes());
        }
        Err(_) => assert!(expected.is_none(), "refused {text:?}"),
    }
});
