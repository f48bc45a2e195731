//! Known-answer tests: every published RFC 4226 (HOTP) and RFC 6238 (TOTP) vector through the
//! crate's public TOTP functions.

use twofactor::{
    totp::totp_code, totp::TotpAlgorithm, totp::TotpParams, totp::TotpSecret, totp::TotpVerifier,
};

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: (count, truncated 31-bit value, 6-digit HOTP).
const HOTP: [(u64, &str, &str); 10] = [
    (0, "1284755224", "755224"),
    (1, "1094287082", "287082"),
    (2, "0137359152", "359152"),
    (3, "1726969429", "969429"),
    (4, "1640338314", "338314"),
    (5, "0868254676", "254676"),
    (6, "1918287922", "287922"),
    (7, "0082162583", "162583"),
    (8, "0673399871", "399871"),
    (9, "0645520489", "520489"),
];

/// RFC 6238 Appendix B: (time, SHA1, SHA256, SHA512), 8 digits as published.
const TOTP: [(u64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
];

fn params(algorithm: TotpAlgorithm, digits: u32, period: u64) -> TotpParams {
    TotpParams {
        algorithm,
        digits,
        period,
    }
}

/// The last `n` characters of a published code.
fn last(code: &str, n: usize) -> &str {
    &code[code.len() - n..]
}

#[test]
fn rfc4226_appendix_d_hotp() {
    // HOTP is TOTP with a one-second step and the counter as the time.
    for (count, truncated, hotp) in HOTP {
        let six = params(TotpAlgorithm::Sha1, 6, 1);
        assert_eq!(totp_code(SEED_SHA1, six, count), hotp, "count {count}");
        // Ten digits show the whole 31-bit dynamic-truncation value of the appendix.
        let ten = params(TotpAlgorithm::Sha1, 10, 1);
        assert_eq!(totp_code(SEED_SHA1, ten, count), truncated, "count {count}");
    }
}

fn seed_of(algorithm: TotpAlgorithm) -> &'static [u8] {
    match algorithm {
        TotpAlgorithm::Sha1 => SEED_SHA1,
        TotpAlgorithm::Sha256 => SEED_SHA256,
        TotpAlgorithm::Sha512 => SEED_SHA512,
        other => panic!("no RFC 6238 seed for {other:?}"),
    }
}

fn each_vector() -> Vec<(TotpAlgorithm, u64, &'static str)> {
    let mut out = Vec::new();
    for (time, sha1, sha256, sha512) in TOTP {
        out.push((TotpAlgorithm::Sha1, time, sha1));
        out.push((TotpAlgorithm::Sha256, time, sha256));
        out.push((TotpAlgorithm::Sha512, time, sha512));
    }
    out
}

#[test]
fn rfc6238_appendix_b_eight_digits() {
    for (alg, time, code) in each_vector() {
        let p = params(alg, 8, 30);
        assert_eq!(totp_code(seed_of(alg), p, time), code, "{alg:?} at {time}");
    }
}

#[test]
fn rfc6238_appendix_b_six_digits_are_the_last_six() {
    for (alg, time, code) in each_vector() {
        let p = params(alg, 6, 30);
        assert_eq!(
            totp_code(seed_of(alg), p, time),
            last(code, 6),
            "{alg:?} at {time}"
        );
    }
}

#[test]
fn rfc6238_vectors_verify_through_the_verifier_and_wrong_ones_do_not() {
    for (alg, time, code) in each_vector() {
        let secret = TotpSecret::from_bytes(seed_of(alg).to_vec()).unwrap();
        for (digits, code) in [(8, code), (6, last(code, 6))] {
            let v = TotpVerifier::new(&secret, params(alg, digits, 30)).unwrap();
            assert_eq!(v.code(time), code);
            assert_eq!(
                v.verify(time, 0, code),
                Some(time / 30),
                "{alg:?} at {time}"
            );
            // A published code one digit off is refused.
            let mut wrong = code.as_bytes().to_vec();
            wrong[0] = if wrong[0] == b'9' { b'0' } else { wrong[0] + 1 };
            let wrong = String::from_utf8(wrong).unwrap();
            assert_eq!(v.verify(time, 1, &wrong), None, "{alg:?} at {time}");
        }
    }
}

#[test]
fn the_year_2603_vector_is_past_32_bit_time() {
    // 20000000000 needs more than 32 bits (RFC 6238 §4.2: time as a 64-bit value).
    const { assert!(20_000_000_000u64 > u32::MAX as u64) };
    let p = params(TotpAlgorithm::Sha1, 8, 30);
    assert_eq!(totp_code(SEED_SHA1, p, 20_000_000_000), "65353130");
}

#[test]
fn totp_rs_agrees_with_the_vectors_too() {
    // An independent implementation, as a second witness for the table above.
    for (alg, time, code) in each_vector() {
        let a = match alg {
            TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
            TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
            TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
            other => panic!("no totp-rs algorithm for {other:?}"),
        };
        let t = totp_rs::TOTP::new_unchecked(a, 8, 0, 30, seed_of(alg).to_vec());
        assert_eq!(t.generate(time), code);
    }
}
