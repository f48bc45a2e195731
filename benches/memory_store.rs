//! `MemoryOtpStore` under a login-shaped sequence of primitives, with 1k, 100k and 1M records
//! held: the cost of a login must not grow with the number of records (target: 1M/1k ≤ 1.3).
//!
//! The records held are challenge-sized (48-byte key, 100-byte value) and outlive the run:
//! other users' pending challenges. Each login is what `begin_login` and `verify_login` ask of
//! the store: put the challenge, get it, increment its attempts, get the user's lock, increment
//! the user's failures, advance the user's TOTP step, take the challenge, put the lock. Users
//! cycle through a pool of 64 and challenge ids through 128, so these add at most a few hundred
//! records to the size; time moves one second per login and the per-login records expire after
//! a minute, so the sweep always has expired records to collect. Keys are built before timing.
//! The store never waits, so a no-op waker drives its futures.
//!
//! The records a login touches stay in cache at every size: what is measured is the store's own
//! work per call, which must not depend on the size. A login for a user whose records are cold
//! pays a few cache misses more in a big map, whatever the map's design.
//!
//! After criterion, a `paired` table runs the three sizes in alternation (301 short rounds) and
//! prints each size's median and the median per-round ratio to 1k, which drifting load on a
//! shared machine disturbs far less than medians measured one after the other. Then `drain`
//! lets a flood of 1M challenges expire and times each ordinary write while the sweep collects
//! it.
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
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use twofactor::{MemoryOtpStore, OtpStore, StoreKey, Timestamp};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const T0: u64 = 1_700_000_000;
const USERS: usize = 64;
const CHALLENGES: usize = 128;
/// Lifetime of the per-login records, in logins (one second each).
const TTL: u64 = 60;
const VALUE: [u8; 100] = [0x5a; 100];
const LOCK: [u8; 24] = [0x11; 24];

/// Drives a future that never waits (the memory store) to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

/// A 48-byte challenge key, as the service shapes them.
fn challenge_key(space: u8, i: usize) -> StoreKey {
    StoreKey::new(format!("tf:c:{{{space:x}{i:030x}}}:challenge"))
}

struct UserKeys {
    lock: StoreKey,
    fails: StoreKey,
    step: StoreKey,
}

struct ChallengeKeys {
    challenge: StoreKey,
    attempts: StoreKey,
}

/// A store holding `size` long-lived records, and the state of its logins.
struct Subject {
    size: usize,
    store: MemoryOtpStore,
    users: Vec<UserKeys>,
    challenges: Vec<ChallengeKeys>,
    logins: u64,
}

impl Subject {
    fn new(size: usize) -> Self {
        let store = MemoryOtpStore::new();
        for i in 0..size {
            run(store.put(&challenge_key(0, i), &VALUE, at(T0 + (1 << 40)), at(T0))).unwrap();
        }
        let users = (0..USERS)
            .map(|u| {
                let tag = format!("{u:024x}");
                UserKeys {
                    lock: StoreKey::new(format!("tf:u:{{{tag}}}:lock")),
                    fails: StoreKey::new(format!("tf:u:{{{tag}}}:fails:0")),
                    step: StoreKey::new(format!("tf:u:{{{tag}}}:totp-step")),
                }
            })
            .collect();
        let challenges = (0..CHALLENGES)
            .map(|c| {
                let id = format!("1{c:030x}");
                ChallengeKeys {
                    challenge: StoreKey::new(format!("tf:c:{{{id}}}:challenge")),
                    attempts: StoreKey::new(format!("tf:c:{{{id}}}:attempts")),
                }
            })
            .collect();
        Subject {
            size,
            store,
            users,
            challenges,
            logins: 0,
        }
    }

    /// One login's worth of store calls.
    fn login(&mut self) {
        self.logins += 1;
        let i = self.logins as usize;
        let (user, ch) = (&self.users[i % USERS], &self.challenges[i % CHALLENGES]);
        let s = &self.store;
        let now = at(T0 + self.logins);
        let exp = at(T0 + self.logins + TTL);
        run(s.put(&ch.challenge, &VALUE, exp, now)).unwrap();
        black_box(run(s.get(&ch.challenge, now)).unwrap().unwrap());
        black_box(run(s.increment(&ch.attempts, exp, now)).unwrap());
        black_box(run(s.get(&user.lock, now)).unwrap());
        black_box(run(s.increment(&user.fails, exp, now)).unwrap());
        black_box(run(s.advance(&user.step, self.logins, exp, now)).unwrap());
        black_box(run(s.take(&ch.challenge, now)).unwrap().unwrap());
        run(s.put(&user.lock, &LOCK, exp, now)).unwrap();
    }

    /// Nanoseconds per login over `n` logins.
    fn per_login(&mut self, n: u64) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            self.login();
        }
        start.elapsed().as_nanos() as f64 / n as f64
    }
}

fn subjects() -> Vec<Subject> {
    SIZES
        .iter()
        .map(|&n| {
            let mut s = Subject::new(n);
            // Reach the steady state: per-login records expiring and being swept.
            s.per_login(20_000);
            s
        })
        .collect()
}

fn login_sequence(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_store_login");
    for mut s in subjects() {
        g.bench_function(format!("{}_records", s.size), |b| b.iter(|| s.login()));
    }
    g.finish();
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
const PER_ROUND: u64 = 2_000;

/// Runs the sizes in alternation and prints their medians and ratios to the smallest.
fn paired() {
    let mut subjects = subjects();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for _ in 0..ROUNDS {
        let round: Vec<f64> = subjects
            .iter_mut()
            .map(|s| s.per_login(PER_ROUND))
            .collect();
        for (k, t) in round.iter().enumerate() {
            times[k].push(*t);
            ratios[k].push(t / round[0]);
        }
    }
    println!("\npaired (login = 7 store calls + the challenge put; {ROUNDS} alternating rounds of {PER_ROUND}):");
    for (k, s) in subjects.iter().enumerate() {
        println!(
            "paired {:>9} records  median {:>6.0} ns/login  ratio to {} median {:.2}  (held {})",
            s.size,
            median(times[k].clone()),
            SIZES[0],
            median(ratios[k].clone()),
            s.store.len()
        );
    }
}

/// A flood of 1M challenges expires; times each ordinary write while the sweep collects it.
fn drain() {
    const FLOOD: usize = 1_000_000;
    let store = MemoryOtpStore::new();
    for i in 0..FLOOD {
        run(store.put(&challenge_key(2, i), &VALUE, at(T0 + 300), at(T0))).unwrap();
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

criterion_group!(benches, login_sequence);

fn main() {
    benches();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and skips this part.
    if std::env::args().any(|a| a == "--bench") {
        paired();
        drain();
    }
    Criterion::default().configure_from_args().final_summary();
}
