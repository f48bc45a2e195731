//! Hashing and verification costs, each beside the crypto floor measured in the same run.
//!
//! - `code_hashing`: how a one-time code is stored: keyed HMAC-SHA256 (the default), argon2id
//!   with the crate's default parameters (the opt-in), and unkeyed SHA-256 (for comparison only:
//!   never used, a leaked store of unkeyed 6-digit hashes falls to 10^6 guesses).
//! - `totp_verify`: open a sealed 20-byte secret (XChaCha20-Poly1305, as the keyring does) and
//!   check a code with a ±1 step window through [`TotpVerifier`], against the floor of that same
//!   AEAD open plus three HMAC-SHA1 from a pre-keyed state. `totp_rs_per_step` is the same check
//!   with `totp-rs`, which re-keys the HMAC for each step (for comparison; it compares with `==`).
//! - `backup_code_verify`: a whole `verify_login` with a backup code on the memory stores, with
//!   10 codes held and with 1 (the cost must not grow with the set), beside its crypto floor
//!   (two pre-keyed HMAC-SHA256: the challenge token's id and the code's lookup).
//! - `verify_login`: a whole `verify_login` with a TOTP code on the memory stores beside two
//!   floors: the AEAD open of the sealed secret and three pre-keyed HMAC-SHA1 (the floor the
//!   target is set against: ≤ 2.5×), and the same plus the token's pre-keyed HMAC-SHA256.
//! - `verify_login_email`: a whole `verify_login` with an emailed code on the memory stores
//!   (a user whose only factor is email) beside its floor: two pre-keyed HMAC-SHA256 (the token's
//!   id and the code's keyed hash), one increment and one take on a bare `Mutex<HashMap>`
//!   (target ≤ 3×).
//!
//! The service benches time only `verify_login`: each iteration first moves a manual clock one
//! TOTP step on (so no code is a replay), makes fresh backup codes where needed and opens a
//! challenge (mailing the code, for email), untimed. The memory stores never wait, so a no-op
//! waker drives the futures.
//!
//! After criterion, a `paired ratios` table runs each subject and its floor in alternation (301
//! short rounds) and prints the median per-round ratio and the ratio of the fastest rounds,
//! which drifting load on a shared machine disturbs far less than two medians measured one
//! after the other.
//!
//! Run: `cargo bench --bench hashing -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // A benchmark measures wall time: Instant is its instrument, not the logic's clock.
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use twofactor::LoginContext;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, Criterion};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use twofactor::{
    clock::Timestamp, store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret,
    totp::TotpVerifier, ChallengeToken, Keyring, LoginStep, Method, Policy, TwoFactorService,
};

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

/// The TOTP check of one login, and its floor, on one sealed secret.
struct TotpCase {
    sealed: Sealed,
    params: TotpParams,
    code: String,
    step: u64,
    prekeyed: HmacSha1,
}

impl TotpCase {
    fn new(secret: &TotpSecret) -> Self {
        let params = TotpParams::default();
        let case = TotpCase {
            sealed: Sealed::new(secret.as_bytes()),
            params,
            code: totp_code(secret.as_bytes(), params, NOW),
            step: NOW / 30,
            prekeyed: <HmacSha1 as Mac>::new_from_slice(secret.as_bytes()).unwrap(),
        };
        // Sanity: the code is accepted before anything is timed.
        assert_eq!(case.ours(), Some(case.step));
        assert_eq!(case.totp_rs(), Some(case.step));
        case
    }

    /// The floor: the AEAD open and three HMAC-SHA1 from a pre-keyed state.
    fn floor(&self) -> (Vec<u8>, u8) {
        let pt = self.sealed.open(black_box(USER));
        let mut acc = 0u8;
        for s in self.step - 1..=self.step + 1 {
            let mut m = self.prekeyed.clone();
            m.update(&s.to_be_bytes());
            acc ^= m.finalize().into_bytes()[19];
        }
        (pt, acc)
    }

    /// Open, then verify through the public TotpVerifier (what `matching_step` does).
    fn ours(&self) -> Option<u64> {
        let secret = TotpSecret::from_bytes(self.sealed.open(black_box(USER))).unwrap();
        let v = TotpVerifier::new(&secret, self.params).unwrap();
        v.verify(black_box(NOW), 1, black_box(&self.code))
    }

    /// Open, then one totp-rs code per step of the window.
    fn totp_rs(&self) -> Option<u64> {
        let pt = self.sealed.open(black_box(USER));
        let t = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, 30, pt);
        let mut found = None;
        for s in self.step - 1..=self.step + 1 {
            let hit = t.generate(s * 30).as_bytes() == black_box(&self.code).as_bytes();
            if hit && found.is_none() {
                found = Some(s);
            }
        }
        found
    }
}

fn totp_verify(c: &mut Criterion) {
    let case = TotpCase::new(&TotpSecret::generate(20).unwrap());
    let mut g = c.benchmark_group("totp_verify");
    g.bench_function("floor_aead_open_plus_3_prekeyed_hmac_sha1", |b| {
        b.iter(|| case.floor())
    });
    g.bench_function("twofactor_verifier", |b| b.iter(|| case.ours()));
    g.bench_function("totp_rs_per_step", |b| b.iter(|| case.totp_rs()));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The service: backup-code verify and a whole verify_login

/// Drives a future that never waits (the memory stores) to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// A service on the memory stores with one user enrolled in TOTP.
struct Fixture {
    tf: TwoFactorService,
    clock: ManualClock,
    secret: TotpSecret,
}

impl Fixture {
    fn new(backup_codes: u32) -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_secs(NOW));
        let mut policy = Policy::default();
        policy.backup_code_count = backup_codes;
        let tf = TwoFactorService::builder()
            .issuer("Bench")
            .keys(Keyring::generate())
            .otp_store(MemoryOtpStore::new())
            .enrollments(MemoryEnrollmentStore::new())
            .mailer(RecordingMailer::new())
            .policy(policy)
            .clock(clock.clone())
            .build()
            .unwrap();
        let setup = run(tf.totp().start_setup(USER, "bench@example.com")).unwrap();
        let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
        let f = Fixture { tf, clock, secret };
        run(f.tf.totp().confirm_setup(USER, &f.code_now())).unwrap();
        f
    }

    fn code_now(&self) -> String {
        let policy = self.tf.policy();
        let params = TotpParams {
            algorithm: policy.totp_algorithm,
            digits: policy.totp_digits,
            period: policy.totp_period.as_secs(),
        };
        totp_code(self.secret.as_bytes(), params, self.clock_secs())
    }

    fn clock_secs(&self) -> u64 {
        use twofactor::clock::Clock;
        self.clock.now().as_unix_secs()
    }

    /// Moves to the next TOTP step, so that its code has not been used.
    fn next_step(&self) {
        self.clock.advance(Duration::from_secs(30));
    }

    fn challenge(&self) -> ChallengeToken {
        match run(self.tf.begin_login(LoginContext::none(), USER)).unwrap() {
            LoginStep::Challenge(ch) => ch.token().clone(),
            LoginStep::Complete(_) => panic!("the user has a factor"),
        }
    }
}

/// Times `verify_login` alone; `prepare` runs untimed before each call.
fn time_verify_login(
    tf: &TwoFactorService,
    iters: u64,
    mut prepare: impl FnMut() -> (ChallengeToken, String),
    expect: Method,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (token, input) = prepare();
        let start = Instant::now();
        let v = run(tf.verify_login(LoginContext::none(), black_box(&token), black_box(&input)));
        total += start.elapsed();
        assert_eq!(v.unwrap().method(), Some(expect));
    }
    total
}

/// Fresh backup codes (through a TOTP step-up) and a challenge; returns a code to redeem.
fn with_fresh_backup_codes(f: &Fixture) -> (ChallengeToken, String) {
    f.next_step();
    let codes = run(f.tf.backup_codes().regenerate(USER, &f.code_now())).unwrap();
    (f.challenge(), codes[0].expose().to_owned())
}

fn prekeyed_sha256(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).unwrap()
}

/// One HMAC-SHA256 from a pre-keyed state over length-prefixed parts.
fn mac_from(state: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = state.clone();
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The crypto floors of a login: the token's id, and then a backup code's lookup or a TOTP check.
struct LoginFloor {
    mac_key: HmacSha256,
    token: String,
    totp: TotpCase,
}

impl LoginFloor {
    fn new(secret: &TotpSecret) -> Self {
        LoginFloor {
            mac_key: prekeyed_sha256(&random()),
            token: "A".repeat(32),
            totp: TotpCase::new(secret),
        }
    }

    fn token_id(&self) -> [u8; 32] {
        mac_from(
            &self.mac_key,
            &[b"challenge", black_box(self.token.as_bytes())],
        )
    }

    /// Two pre-keyed HMAC-SHA256: the token's id and the backup code's lookup.
    fn backup(&self) -> ([u8; 32], [u8; 32]) {
        let lookup = mac_from(
            &self.mac_key,
            &[b"backup code", USER.as_bytes(), black_box(b"ABCD1234EFGH")],
        );
        (self.token_id(), lookup)
    }

    /// The TOTP floor: the AEAD open and three HMAC-SHA1, all pre-keyed.
    fn totp(&self) -> (Vec<u8>, u8) {
        self.totp.floor()
    }

    /// The token's id plus the TOTP floor.
    fn token_and_totp(&self) -> ([u8; 32], (Vec<u8>, u8)) {
        (self.token_id(), self.totp.floor())
    }
}

fn login_totp(f: &Fixture) -> (ChallengeToken, String) {
    f.next_step();
    (f.challenge(), f.code_now())
}

fn backup_code_verify(c: &mut Criterion) {
    let ten = Fixture::new(10);
    let one = Fixture::new(1);
    let floor = LoginFloor::new(&ten.secret);

    let mut g = c.benchmark_group("backup_code_verify");
    g.bench_function("floor_2_prekeyed_hmac_sha256", |b| {
        b.iter(|| floor.backup())
    });
    for (name, f) in [
        ("verify_login_10_held", &ten),
        ("verify_login_1_held", &one),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                time_verify_login(
                    &f.tf,
                    iters,
                    || with_fresh_backup_codes(f),
                    Method::BackupCode,
                )
            })
        });
    }
    g.finish();
}

fn verify_login(c: &mut Criterion) {
    let f = Fixture::new(10);
    let floor = LoginFloor::new(&f.secret);
    let mut g = c.benchmark_group("verify_login");
    g.bench_function("floor_aead_open_3_hmac_sha1", |b| b.iter(|| floor.totp()));
    g.bench_function("floor_token_hmac_aead_open_3_hmac_sha1", |b| {
        b.iter(|| floor.token_and_totp())
    });
    g.bench_function("totp", |b| {
        b.iter_custom(|iters| time_verify_login(&f.tf, iters, || login_totp(&f), Method::Totp))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// verify_login by an emailed code

const EMAIL_USER: &str = "user-0002";
const ADDRESS: &str = "mail@example.com";

/// A service on the memory stores with one user whose only factor is email.
struct EmailFixture {
    tf: TwoFactorService,
    clock: ManualClock,
    mailer: RecordingMailer,
}

impl EmailFixture {
    fn new() -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_secs(NOW));
        let mailer = RecordingMailer::new();
        let mut policy = Policy::default();
        // One code per login, many logins: the per-user send cap must not refuse them.
        policy.max_sends = u32::MAX;
        let tf = TwoFactorService::builder()
            .issuer("Bench")
            .keys(Keyring::generate())
            .otp_store(MemoryOtpStore::new())
            .enrollments(MemoryEnrollmentStore::new())
            .mailer(mailer.clone())
            .policy(policy)
            .clock(clock.clone())
            .build()
            .unwrap();
        let f = EmailFixture { tf, clock, mailer };
        run(f.tf.email().start_setup(EMAIL_USER, ADDRESS)).unwrap();
        let code = f.mailed_code();
        run(f.tf.email().confirm_setup(EMAIL_USER, &code)).unwrap();
        f
    }

    /// The code of the last message, and forgets the messages.
    fn mailed_code(&self) -> String {
        let text = self
            .mailer
            .last_to(ADDRESS)
            .expect("a code was mailed")
            .text;
        self.mailer.clear();
        text.lines()
            .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
            .find(|l| (6..=10).contains(&l.len()) && l.chars().all(|c| c.is_ascii_digit()))
            .expect("the message holds a code")
    }

    /// A new challenge (its code mailed), a little later than the last.
    fn challenge(&self) -> (ChallengeToken, String) {
        self.clock.advance(Duration::from_secs(30));
        match run(self.tf.begin_login(LoginContext::none(), EMAIL_USER)).unwrap() {
            LoginStep::Challenge(ch) => {
                assert!(ch.email_sent());
                (ch.token().clone(), self.mailed_code())
            }
            LoginStep::Complete(_) => panic!("the user has a factor"),
        }
    }
}

/// The floor of an email answer: two pre-keyed HMAC-SHA256 (the token's id, the code's keyed
/// hash), one increment (the attempt) and one take (the challenge) on a bare locked map.
struct EmailFloor {
    mac_key: HmacSha256,
    token: [u8; 44],
    code: String,
    map: Mutex<HashMap<Box<str>, Slot>>,
    counter: Box<str>,
    keys: Vec<Box<str>>,
}

enum Slot {
    Count(u64),
    Bytes(#[allow(dead_code)] Box<[u8]>),
}

/// Challenges taken per timed batch of the email floor.
const BATCH: usize = 256;

impl EmailFloor {
    fn new() -> Self {
        let counter: Box<str> = "tf:{AAAAAAAAAAAAAAAA}".into();
        let mut map = HashMap::new();
        map.insert(counter.clone(), Slot::Count(0));
        EmailFloor {
            mac_key: prekeyed_sha256(&random()),
            token: random(),
            code: "123456".to_owned(),
            map: Mutex::new(map),
            keys: (0..BATCH)
                .map(|i| format!("tf:{{AAAAAAAAAAAAAAAA}}:c:{i:022}").into())
                .collect(),
            counter,
        }
    }

    /// Puts `BATCH` challenge-sized records back (untimed), then times `BATCH` answers; returns
    /// nanoseconds per answer.
    fn batch(&self) -> f64 {
        {
            let mut map = self.map.lock().unwrap();
            for k in &self.keys {
                map.insert(k.clone(), Slot::Bytes(vec![0x5a; 160].into()));
            }
        }
        let start = Instant::now();
        for k in &self.keys {
            black_box(self.answer(k));
        }
        start.elapsed().as_nanos() as f64 / BATCH as f64
    }

    fn answer(&self, key: &str) -> ([u8; 32], [u8; 32], Option<Slot>) {
        let id = mac_from(&self.mac_key, &[b"challenge", black_box(&self.token)]);
        let mac = mac_from(
            &self.mac_key,
            &[
                b"code",
                &id[..16],
                EMAIL_USER.as_bytes(),
                black_box(self.code.as_bytes()),
            ],
        );
        if let Some(Slot::Count(n)) = self.map.lock().unwrap().get_mut(&self.counter) {
            *n += 1;
        }
        let taken = self.map.lock().unwrap().remove(black_box(key));
        assert!(taken.is_some());
        (id, mac, taken)
    }

    /// Total time of `iters` answers, in batches.
    fn time(&self, iters: u64) -> Duration {
        let batches = iters.div_ceil(BATCH as u64).max(1);
        let ns: f64 = (0..batches).map(|_| self.batch()).sum::<f64>() * BATCH as f64;
        Duration::from_nanos((ns * iters as f64 / (batches * BATCH as u64) as f64) as u64)
    }
}

fn verify_login_email(c: &mut Criterion) {
    let f = EmailFixture::new();
    let floor = EmailFloor::new();
    let mut g = c.benchmark_group("verify_login_email");
    g.bench_function("floor_2_prekeyed_hmac_sha256_increment_take", |b| {
        b.iter_custom(|iters| floor.time(iters))
    });
    g.bench_function("email", |b| {
        b.iter_custom(|iters| time_verify_login(&f.tf, iters, || f.challenge(), Method::Email))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Paired ratios

/// Nanoseconds per call of `f` over `n` calls.
fn per_call<T>(n: u64, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `floor` and `subject` in alternation, `rounds` times, and prints their medians, the
/// median of the per-round ratios and the ratio of the fastest rounds. On a shared machine the
/// load drifts between two criterion benchmarks run one after the other; alternating in short
/// rounds cancels most of that drift, and the fastest rounds are the least disturbed.
fn paired(
    name: &str,
    rounds: usize,
    mut floor: impl FnMut() -> f64,
    mut subject: impl FnMut() -> f64,
) {
    let (mut fs, mut ss, mut rs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let f = floor();
        let s = subject();
        fs.push(f);
        ss.push(s);
        rs.push(s / f);
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let min_ratio = min(&ss) / min(&fs);
    println!(
        "paired {name:<56} floor {:>7.0} ns  subject {:>7.0} ns  ratio median {:.2}  of fastest {:.2}",
        median(fs),
        median(ss),
        median(rs),
        min_ratio
    );
}

const ROUNDS: usize = 301;

fn paired_ratios() {
    println!("\npaired ratios (subject / floor over {ROUNDS} alternating rounds):");
    let secret = TotpSecret::generate(20).unwrap();
    let case = TotpCase::new(&secret);
    paired(
        "totp_verify/twofactor_verifier",
        ROUNDS,
        || per_call(500, || case.floor()),
        || per_call(500, || case.ours()),
    );
    paired(
        "totp_verify/totp_rs_per_step",
        ROUNDS,
        || per_call(500, || case.floor()),
        || per_call(500, || case.totp_rs()),
    );

    let ten = Fixture::new(10);
    let one = Fixture::new(1);
    let floor = LoginFloor::new(&ten.secret);
    let login = |f: &Fixture, prepare: fn(&Fixture) -> (ChallengeToken, String), m| {
        time_verify_login(&f.tf, 200, || prepare(f), m).as_nanos() as f64 / 200.0
    };
    let backup = with_fresh_backup_codes;
    paired(
        "verify_login/totp vs AEAD + 3 HMAC-SHA1 (≤ 2.5)",
        ROUNDS,
        || per_call(200, || floor.totp()),
        || login(&ten, login_totp, Method::Totp),
    );
    paired(
        "verify_login/totp vs token HMAC + AEAD + 3 HMAC-SHA1",
        ROUNDS,
        || per_call(200, || floor.token_and_totp()),
        || login(&ten, login_totp, Method::Totp),
    );
    let email = EmailFixture::new();
    let email_floor = EmailFloor::new();
    paired(
        "verify_login/email vs 2 HMAC-SHA256 + incr + take (≤ 3)",
        ROUNDS,
        || email_floor.batch(),
        || {
            time_verify_login(&email.tf, 200, || email.challenge(), Method::Email).as_nanos() as f64
                / 200.0
        },
    );
    paired(
        "backup_code_verify/verify_login_10_held",
        ROUNDS,
        || per_call(200, || floor.backup()),
        || login(&ten, backup, Method::BackupCode),
    );
    paired(
        "backup_code_verify/verify_login_1_held",
        ROUNDS,
        || per_call(200, || floor.backup()),
        || login(&one, backup, Method::BackupCode),
    );
    paired(
        "backup: 10 held (floor) vs 1 held (subject)",
        ROUNDS,
        || login(&ten, backup, Method::BackupCode),
        || login(&one, backup, Method::BackupCode),
    );
}

criterion_group!(
    benches,
    code_hashing,
    totp_verify,
    backup_code_verify,
    verify_login,
    verify_login_email
);

fn main() {
    benches();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and skips this part.
    if std::env::args().any(|a| a == "--bench") {
        paired_ratios();
    }
    Criterion::default().configure_from_args().final_summary();
}
