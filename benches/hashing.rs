//! Hashing and verification costs, each beside the crypto floor measured in the same run.
//!
//! - `code_hashing`: how a one-time code is stored: keyed HMAC-SHA256 (the default), argon2id
//!   with the crate's default parameters (the opt-in), and unkeyed SHA-256 (for comparison only:
//!   never used, a leaked store of unkeyed 6-digit hashes falls to 10^6 guesses).
//! - `totp_verify`: open a sealed 20-byte secret (XChaCha20-Poly1305, as the keyring does) and
//!   check a code with a ±1 step window through [`TotpVerifier`], against the floor of that same
//!   AEAD open plus three HMAC-SHA1 from a pre-keyed state. `totp_rs_per_step` is the same check
//!   with `totp-rs`, which re-keys the HMAC for each step (for comparison; it compares with `==`).
//!
//! Run: `cargo bench --bench hashing -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use twofactor::{totp_code, TotpParams, TotpSecret, TotpVerifier};

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

const USER: &str = "user-0001";
const NOW: u64 = 1_700_000_000;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

// ---------------------------------------------------------------------------------------------
// Code hashing

/// HMAC-SHA256 over length-prefixed parts, keyed per call (as the keyring's `mac` does).
fn keyed_code_hash(key: &[u8; 32], purpose: &[u8], user: &[u8], code: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
    for p in [purpose, user, code] {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn code_hashing(c: &mut Criterion) {
    let key: [u8; 32] = random();
    let salt: [u8; 16] = random();
    let code = b"123456";
    let mut g = c.benchmark_group("code_hashing");
    g.bench_function("hmac_sha256_keyed", |b| {
        b.iter(|| keyed_code_hash(black_box(&key), b"login", USER.as_bytes(), black_box(code)))
    });
    g.bench_function("sha256_unkeyed", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            h.update(b"login");
            h.update(USER.as_bytes());
            h.update(black_box(code));
            <[u8; 32]>::from(h.finalize())
        })
    });
    g.finish();

    // argon2id takes tens of milliseconds per hash: fewer samples.
    let mut g = c.benchmark_group("code_hashing_argon2");
    g.sample_size(10);
    let argon = argon2::Argon2::default();
    g.bench_function("argon2id_default", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            argon
                .hash_password_into(black_box(code), &salt, &mut out)
                .unwrap();
            out
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// TOTP verify

/// A sealed secret in the keyring's envelope layout: version, key id, nonce, ciphertext + tag.
struct Sealed {
    aead_key: [u8; 32],
    key_id: [u8; 4],
    envelope: Vec<u8>,
}

fn aad(key_id: &[u8], user: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + user.len());
    aad.extend_from_slice(b"twofactor totp secret v1");
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(&(user.len() as u64).to_be_bytes());
    aad.extend_from_slice(user.as_bytes());
    aad
}

impl Sealed {
    fn new(secret: &[u8]) -> Self {
        let aead_key: [u8; 32] = random();
        let key_id: [u8; 4] = random();
        let nonce: [u8; 24] = random();
        let cipher = XChaCha20Poly1305::new((&aead_key).into());
        let aad = aad(&key_id, USER);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .unwrap();
        let mut envelope = vec![1u8];
        envelope.extend_from_slice(&key_id);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(&ct);
        Sealed {
            aead_key,
            key_id,
            envelope,
        }
    }

    /// The open of the keyring: check the header, rebuild the AAD, decrypt.
    fn open(&self, user: &str) -> Vec<u8> {
        let (header, ct) = self.envelope.split_at(29);
        assert_eq!(header[0], 1);
        assert_eq!(&header[1..5], &self.key_id);
        let cipher = XChaCha20Poly1305::new((&self.aead_key).into());
        let aad = aad(&header[1..5], user);
        cipher
            .decrypt(
                XNonce::from_slice(&header[5..29]),
                Payload { msg: ct, aad: &aad },
            )
            .unwrap()
    }
}

fn totp_verify(c: &mut Criterion) {
    let secret = TotpSecret::generate(20).unwrap();
    let params = TotpParams::default();
    let sealed = Sealed::new(secret.as_bytes());
    let code = totp_code(secret.as_bytes(), params, NOW);
    let step = NOW / 30;
    let prekeyed = <HmacSha1 as Mac>::new_from_slice(secret.as_bytes()).unwrap();

    // Sanity: every variant accepts the code before it is timed.
    let opened = TotpSecret::from_bytes(sealed.open(USER)).unwrap();
    let v = TotpVerifier::new(&opened, params).unwrap();
    assert_eq!(v.verify(NOW, 1, &code), Some(step));

    let mut g = c.benchmark_group("totp_verify");
    g.bench_function("floor_aead_open_plus_3_prekeyed_hmac_sha1", |b| {
        b.iter(|| {
            let pt = sealed.open(black_box(USER));
            let mut acc = 0u8;
            for s in step - 1..=step + 1 {
                let mut m = prekeyed.clone();
                m.update(&s.to_be_bytes());
                acc ^= m.finalize().into_bytes()[19];
            }
            (pt, acc)
        })
    });
    g.bench_function("twofactor_verifier", |b| {
        b.iter(|| {
            let secret = TotpSecret::from_bytes(sealed.open(black_box(USER))).unwrap();
            let v = TotpVerifier::new(&secret, params).unwrap();
            v.verify(black_box(NOW), 1, black_box(&code))
        })
    });
    g.bench_function("totp_rs_per_step", |b| {
        b.iter(|| {
            let pt = sealed.open(black_box(USER));
            let t = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, 30, pt);
            let mut found = None;
            for s in step - 1..=step + 1 {
                if t.generate(s * 30).as_bytes() == black_box(&code).as_bytes() && found.is_none() {
                    found = Some(s);
                }
            }
            found
        })
    });
    g.finish();
}

criterion_group!(benches, code_hashing, totp_verify);
criterion_main!(benches);
