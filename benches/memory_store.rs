//! A whole TOTP login through `TwoFactorService` on `MemoryOtpStore` + `MemoryEnrollmentStore`,
//! with 1k, 100k and 1M live records in the OTP store: its cost must not grow with the number of
//! records (target: 1M/1k ≤ 1.3), and one core should pass 200k logins/s.
//!
//! Each size has its own service, OTP store and manual clock; the three share one keyring and
//! one enrolment store holding the 256 measured users, enrolled once with `start_totp_setup` and
//! `confirm_totp_setup`. The rest of each OTP store is other users' pending challenges, each with
//! an email code (the record of a user enrolled in TOTP and email), written with the store's
//! `store_code` composite operation under keys shaped as the service shapes them: the value is
//! a copy of a real challenge's (taken from a `begin_login`), the code 40 bytes (a keyed hash and
//! an expiry). They are never answered and outlive the run. There are `size - 256` of them, and
//! each measured user's record (written by its first login) makes up the rest, so each store
//! holds its size between logins.
//!
//! A TOTP code is accepted once per user and step, so the measurement goes in steps: move the
//! clock 30 s on, compute each user's code (untimed), then every user logs in once. Two loops,
//! single-threaded (one core):
//! - `verify`: `begin_login` for every user untimed, then `verify_login` on each challenge timed
//!   (256 challenges pending meanwhile);
//! - `begin_verify`: `begin_login` then `verify_login`, both timed, user after user.
//!
//! The records a login touches stay in cache at every size (256 users): what is measured is the
//! work per login, which must not depend on the size. A login of a user whose records are cold
//! pays a few cache misses more in a big map, whatever the map's design.
//!
//! After criterion, a `paired` table runs the three sizes in alternation (301 rounds of two steps
//! per loop) and prints each size's median per login, the logins per second it makes, and the
//! median per-round ratio to 1k, which drifting load on a shared machine disturbs far less than
//! medians measured one after the other. Then `drain` lets a flood of 1M challenge-sized records
//! expire and times each ordinary write while the sweep collects it.
//!
//! Run: `cargo bench --bench memory_store -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // A benchmark measures wall time: Instant is its instrument, not the logic's clock.
    clippy::disallowed_methods,
    missing_docs
)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use twofactor::LoginContext;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{Criterion, Throughput};
use rand::RngCore;
use twofactor::store::flow::{Reserved, SendSpec};
use twofactor::{
    clock::Clock, clock::Timestamp, store::MemoryEnrollmentStore, store::MemoryOtpStore,
    store::OtpStore, store::StoreKey, testing::ManualClock, testing::RecordingMailer,
    totp::totp_code, totp::TotpParams, totp::TotpSecret, ChallengeToken, Keyring, LoginStep,
    Method, TwoFactorService,
};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// The users who log in, each once per step.
const USERS: usize = 256;
const T0: u64 = 1_700_000_000;
/// Far enough that the other users' challenges outlive any run.
const FOREVER: u64 = T0 + (1 << 40);
const PERIOD: Duration = Duration::from_secs(30);

/// Drives a future that never waits (the memory stores) to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory stores never wait"),
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn service(
    keys: &Keyring,
    otp: Arc<MemoryOtpStore>,
    enrollments: Arc<MemoryEnrollmentStore>,
    mailer: RecordingMailer,
    clock: ManualClock,
) -> TwoFactorService {
    TwoFactorService::builder()
        .issuer("Bench")
        .keys(keys.clone())
        .otp_store(otp)
        .enrollments(enrollments)
        .mailer(mailer)
        .clock(clock)
        .build()
        .unwrap()
}

fn challenge(tf: &TwoFactorService, user: &str) -> ChallengeToken {
    match run(tf.begin_login(LoginContext::none(), user)).unwrap() {
        LoginStep::Challenge(ch) => ch.token().clone(),
        LoginStep::Complete(_) => panic!("the user has a factor"),
    }
}

/// The digits of the last message to `to`.
fn mailed_code(mailer: &RecordingMailer, to: &str) -> String {
    let text = mailer.last_to(to).expect("a code was mailed").text;
    text.lines()
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .find(|l| (6..=10).contains(&l.len()) && l.chars().all(|c| c.is_ascii_digit()))
        .expect("the message holds a code")
}

/// The measured users and what the three sizes share.
struct Shared {
    keys: Keyring,
    enrollments: Arc<MemoryEnrollmentStore>,
    users: Vec<(String, TotpSecret)>,
    /// A real challenge's value, for the other users' records.
    template: Vec<u8>,
}

impl Shared {
    /// Enrols the measured users in TOTP, and a user in TOTP and email whose challenge is copied.
    fn new() -> Self {
        let keys = Keyring::generate();
        let enrollments = Arc::new(MemoryEnrollmentStore::new());
        let store = Arc::new(MemoryOtpStore::new());
        let mailer = RecordingMailer::new();
        let clock = ManualClock::new(at(T0));
        let tf = service(
            &keys,
            store.clone(),
            enrollments.clone(),
            mailer.clone(),
            clock.clone(),
        );
        let enrol = |user: &str| {
            let setup = run(tf.totp().start_setup(user, user)).unwrap();
            let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
            let code = totp_code(secret.as_bytes(), TotpParams::default(), T0);
            run(tf.totp().confirm_setup(user, &code)).unwrap();
            secret
        };
        let users = (0..USERS)
            .map(|i| {
                let user = format!("user-{i:08}");
                let secret = enrol(&user);
                (user, secret)
            })
            .collect();

        let (other, address) = ("other-user-00000001", "other.user@example.com");
        enrol(other);
        run(tf.email().start_setup(other, address)).unwrap();
        run(tf
            .email()
            .confirm_setup(other, &mailed_code(&mailer, address)))
        .unwrap();
        store.purge_expired(at(FOREVER));
        challenge(&tf, other);
        // The challenge is the one record under a `:c:` key without the cooldown's `:s`; the
        // user's record is what precedes `:c:`. `reserve_send` hands back the challenge's value.
        let (key, _) = store
            .dump(at(T0))
            .into_iter()
            .find(|(k, _)| k.contains(":c:") && !k.ends_with(":s"))
            .expect("the challenge is stored");
        let user = &key[..key.find(":c:").unwrap()];
        let cooldown = StoreKey::new("bench:cooldown");
        let spec = SendSpec::new(&cooldown, at(T0 + 60), u32::MAX, Duration::from_secs(60));
        let reserved = run(store.reserve_send(
            &StoreKey::new(user),
            Some(&StoreKey::new(key.as_str())),
            &spec,
            at(T0),
        ));
        let Reserved::Granted(Some(template)) = reserved.unwrap() else {
            panic!("the challenge's value is granted");
        };
        Shared {
            keys,
            enrollments,
            users,
            template,
        }
    }
}

/// A service whose OTP store holds `size` live records between logins.
struct Subject {
    size: usize,
    store: Arc<MemoryOtpStore>,
    tf: TwoFactorService,
    clock: ManualClock,
}

/// What a timed login includes.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `verify_login` only, on challenges opened untimed.
    Verify,
    /// `begin_login` and `verify_login`.
    BeginVerify,
}

impl Subject {
    fn new(size: usize, shared: &Shared) -> Self {
        assert!(size > USERS);
        let store = Arc::new(MemoryOtpStore::new());
        let clock = ManualClock::new(at(T0 + 3_600));
        let tf = service(
            &shared.keys,
            store.clone(),
            shared.enrollments.clone(),
            RecordingMailer::new(),
            clock.clone(),
        );
        let mut rng = rand::thread_rng();
        let (mut tag, mut id, mut code) = ([0u8; 12], [0u8; 16], [0u8; 40]);
        let mut key = String::with_capacity(48);
        let now = clock.now();
        for _ in 0..size - USERS {
            rng.fill_bytes(&mut tag);
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut code);
            key.clear();
            key.push_str("tf:{");
            URL_SAFE_NO_PAD.encode_string(tag, &mut key);
            key.push_str("}:c:");
            URL_SAFE_NO_PAD.encode_string(id, &mut key);
            let create = Some((&shared.template[..], at(FOREVER)));
            let made = run(store.store_code(&StoreKey::new(key.as_str()), create, &code, now));
            assert!(made.unwrap());
        }
        let s = Subject {
            size,
            store,
            tf,
            clock,
        };
        // The first login of each user writes its record: from then on the store holds `size`.
        for _ in 0..2 {
            s.step(&shared.users, Mode::BeginVerify);
        }
        assert_eq!(s.store.len(), size);
        s
    }

    /// One TOTP step: every user logs in once. Returns nanoseconds per login, timed as `mode`
    /// says.
    fn step(&self, users: &[(String, TotpSecret)], mode: Mode) -> f64 {
        self.clock.advance(PERIOD);
        let now = self.clock.now().as_unix_secs();
        let codes: Vec<String> = users
            .iter()
            .map(|(_, s)| totp_code(s.as_bytes(), TotpParams::default(), now))
            .collect();
        let check = |v: Result<twofactor::Verified, twofactor::Error>| {
            assert_eq!(v.unwrap().method(), Some(Method::Totp));
        };
        let tf = &self.tf;
        let elapsed = match mode {
            Mode::Verify => {
                let tokens: Vec<ChallengeToken> =
                    users.iter().map(|(u, _)| challenge(tf, u)).collect();
                let start = Instant::now();
                for (token, code) in tokens.iter().zip(&codes) {
                    check(run(tf.verify_login(
                        &LoginContext::new(),
                        black_box(token),
                        black_box(code),
                    )));
                }
                start.elapsed()
            }
            Mode::BeginVerify => {
                let start = Instant::now();
                for ((user, _), code) in users.iter().zip(&codes) {
                    let token = challenge(tf, black_box(user));
                    check(run(tf.verify_login(
                        &LoginContext::new(),
                        &token,
                        black_box(code),
                    )));
                }
                start.elapsed()
            }
        };
        elapsed.as_nanos() as f64 / users.len() as f64
    }

    /// The time of `iters` logins, measured over whole steps.
    fn time(&self, users: &[(String, TotpSecret)], mode: Mode, iters: u64) -> Duration {
        let steps = iters.div_ceil(USERS as u64).max(1);
        let per_login = (0..steps).map(|_| self.step(users, mode)).sum::<f64>() / steps as f64;
        Duration::from_nanos((per_login * iters as f64) as u64)
    }
}

fn criterion_part(c: &mut Criterion, shared: &Shared, subjects: &[Subject]) {
    for (group, mode) in [
        ("memory_store_verify_login", Mode::Verify),
        ("memory_store_begin_verify_login", Mode::BeginVerify),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        for s in subjects {
            g.bench_function(format!("{}_records", s.size), |b| {
                b.iter_custom(|iters| s.time(&shared.users, mode, iters))
            });
        }
        g.finish();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p) as usize]
}

const ROUNDS: usize = 301;
const STEPS_PER_ROUND: usize = 2;

/// Runs the sizes in alternation and prints their medians and ratios to the smallest.
fn paired(shared: &Shared, subjects: &[Subject], mode: Mode) {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for _ in 0..ROUNDS {
        let round: Vec<f64> = subjects
            .iter()
            .map(|s| {
                (0..STEPS_PER_ROUND)
                    .map(|_| s.step(&shared.users, mode))
                    .sum::<f64>()
                    / STEPS_PER_ROUND as f64
            })
            .collect();
        for (k, t) in round.iter().enumerate() {
            times[k].push(*t);
            ratios[k].push(t / round[0]);
        }
    }
    println!(
        "\npaired {mode:?} (TOTP logins through TwoFactorService, one core; {ROUNDS} alternating \
         rounds of {} logins):",
        STEPS_PER_ROUND * USERS
    );
    for (k, s) in subjects.iter().enumerate() {
        let ns = median(times[k].clone());
        println!(
            "paired {mode:?} {:>9} records  median {:>6.0} ns/login  {:>7.0} logins/s  \
             ratio to {} median {:.2}  (held {})",
            s.size,
            ns,
            1e9 / ns,
            SIZES[0],
            median(ratios[k].clone()),
            s.store.len()
        );
    }
}

/// A flood of 1M challenges expires; times each ordinary write while the sweep collects it.
fn drain() {
    const FLOOD: usize = 1_000_000;
    const VALUE: [u8; 100] = [0x5a; 100];
    const LOCK: [u8; 24] = [0x11; 24];
    let store = MemoryOtpStore::new();
    for i in 0..FLOOD {
        let key = StoreKey::new(format!("tf:c:{{2{i:030x}}}:challenge"));
        run(store.put(&key, &VALUE, at(T0 + 300), at(T0))).unwrap();
    }
    let mut lat = Vec::new();
    let mut i = 0u64;
    let start = Instant::now();
    while store.len() > 1 && i < 10 * FLOOD as u64 {
        i += 1;
        let now = at(T0 + 300 + i);
        let t = Instant::now();
        run(store.put(
            &StoreKey::new("tf:u:{x}:lock"),
            &LOCK,
            at(T0 + 1_000_000),
            now,
        ))
        .unwrap();
        lat.push(t.elapsed().as_nanos() as f64);
    }
    let total = start.elapsed();
    println!(
        "\ndrain: {FLOOD} expired records collected by {} writes in {:.1} ms; write latency \
         median {:.0} ns, p99 {:.0} ns, max {:.0} ns",
        lat.len(),
        total.as_secs_f64() * 1e3,
        median(lat.clone()),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let shared = Shared::new();
    let subjects: Vec<Subject> = SIZES.iter().map(|&n| Subject::new(n, &shared)).collect();
    criterion_part(&mut c, &shared, &subjects);
    // `cargo bench` passes --bench; `cargo test --benches` does not, and skips this part.
    if std::env::args().any(|a| a == "--bench") {
        paired(&shared, &subjects, Mode::Verify);
        paired(&shared, &subjects, Mode::BeginVerify);
        drain();
    }
    c.final_summary();
}
