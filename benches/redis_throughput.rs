//! `verify_login` throughput with the short-lived state on Redis, at 1, 8 and 64 concurrent
//! tasks, beside `redis-benchmark`'s EVAL rate on the same server in the same run (when the
//! `redis-benchmark` binary is present).
//!
//! Needs `TWOFACTOR_TEST_REDIS_URL` (for example `redis://127.0.0.1:6379`); without it the bench
//! prints `skipped: …` and does nothing. Enrollments live in memory, so the figures show what
//! Redis adds. Every login is a distinct user with a fresh challenge and TOTP code, prepared
//! outside the timed part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use twofactor::{
    totp_code, ChallengeToken, Clock, Keyring, LoginStep, ManualClock, MemoryEnrollmentStore,
    RecordingMailer, RedisOtpStore, Timestamp, TotpParams, TotpSecret, TwoFactorService,
};

const CONCURRENCY: [usize; 3] = [1, 8, 64];

fn redis_url() -> Option<String> {
    std::env::var("TWOFACTOR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

struct Bench {
    tf: TwoFactorService,
    clock: ManualClock,
    next_user: std::sync::atomic::AtomicU64,
    run: String,
}

impl Bench {
    async fn new(url: &str) -> Self {
        let run = format!("{:08x}", rand_word());
        let otp = RedisOtpStore::builder(url)
            .prefix(format!("twofactor-bench:{run}:"))
            .connect()
            .await
            .expect("connect to Redis");
        let clock = ManualClock::new(Timestamp::from_unix_secs(2_000_000_000));
        let tf = TwoFactorService::builder()
            .issuer("Bench")
            .keys(Keyring::generate())
            .otp_store(otp)
            .enrollments(MemoryEnrollmentStore::new())
            .mailer(RecordingMailer::new())
            .clock(clock.clone())
            .build()
            .expect("service");
        Bench {
            tf,
            clock,
            next_user: std::sync::atomic::AtomicU64::new(0),
            run,
        }
    }

    fn code(&self, secret: &str) -> String {
        let s = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            s.as_bytes(),
            TotpParams::default(),
            self.clock.now().as_unix_secs(),
        )
    }

    /// `n` users enrolled in TOTP, each with an open challenge and the current code.
    async fn prepare(&self, n: u64) -> Vec<(ChallengeToken, String)> {
        // A fresh 30-second step for this batch, after the step of its confirmations.
        self.clock.advance(Duration::from_secs(120));
        let mut secrets = Vec::new();
        for _ in 0..n {
            let i = self
                .next_user
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let user = format!("bench-{}-{i}", self.run);
            let setup = self.tf.start_totp_setup(&user, &user).await.unwrap();
            let secret = setup.secret_base32().to_owned();
            self.tf
                .confirm_totp_setup(&user, &self.code(&secret))
                .await
                .unwrap();
            secrets.push((user, secret));
        }
        self.clock.advance(Duration::from_secs(30));
        let mut out = Vec::new();
        for (user, secret) in secrets {
            let LoginStep::Challenge(ch) = self.tf.begin_login(&user).await.unwrap() else {
                panic!("enrolled users get a challenge");
            };
            out.push((ch.token().clone(), self.code(&secret)));
        }
        out
    }
}

fn rand_word() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// Runs every login of `work` on `concurrency` tasks; returns the time taken.
async fn verify_all(
    tf: &TwoFactorService,
    work: Vec<(ChallengeToken, String)>,
    concurrency: usize,
) -> Duration {
    let work = Arc::new(std::sync::Mutex::new(work));
    #[allow(clippy::disallowed_methods)] // a benchmark measures elapsed time
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (tf, work) = (tf.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let item = work.lock().unwrap().pop();
                let Some((token, code)) = item else { break };
                tf.verify_login(&token, &code).await.expect("login");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// `redis-benchmark`'s rate for an EVAL of a script shaped like the store's (GET, compare,
/// SET with a TTL), at `clients` connections, on the server at `url`.
fn redis_benchmark_eval(url: &str, clients: usize) -> Option<String> {
    let rest = url.strip_prefix("redis://")?;
    let hostport = rest.split('/').next()?;
    let hostport = hostport.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    let script = "local c = redis.call('GET', KEYS[1]) if c and string.sub(c, 1, 20) > ARGV[1] \
                  then return 0 end redis.call('SET', KEYS[1], ARGV[2], 'PX', 60000) return 1";
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-q", "-n", "50000", "-r", "100000"])
        .args(["-c", &clients.to_string()])
        .args(["EVAL", script, "1", "twofactor-bench:eval:__rand_int__"])
        .args(["00000000000000000001", "00000000000000000100bvalue"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .split(['\r', '\n'])
        .rev()
        .find(|l| l.contains("requests per second"))?
        .rsplit(": ")
        .next()?
        .trim()
        .to_owned();
    Some(rate)
}

fn verify_login_on_redis(c: &mut Criterion) {
    let Some(url) = redis_url() else {
        eprintln!("skipped: TWOFACTOR_TEST_REDIS_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = rt.block_on(Bench::new(&url));
    let mut group = c.benchmark_group("verify_login_redis");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    for concurrency in CONCURRENCY {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{concurrency}_tasks")),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let work = bench.prepare(iters).await;
                        verify_all(&bench.tf, work, concurrency).await
                    })
                });
            },
        );
    }
    group.finish();

    for clients in CONCURRENCY {
        match redis_benchmark_eval(&url, clients) {
            Some(rate) => println!("redis-benchmark EVAL, {clients} clients: {rate}"),
            None => {
                println!("redis-benchmark EVAL, {clients} clients: not measured (binary absent)")
            }
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    verify_login_on_redis(&mut c);
    c.final_summary();
}
