//! `verify_login` throughput with the short-lived state on Redis, at 1, 8 and 64 concurrent
//! tasks, beside `redis-benchmark`'s EVAL rate on the same server in the same run (when the
//! `redis-benchmark` binary is present).
//!
//! Needs `TWOFACTOR_TEST_REDIS_URL` (for example `redis://127.0.0.1:6379`); without it the bench
//! prints `skipped: …` and does nothing. Enrollments live in memory, so the figures show what
//! Redis adds. Every login of a batch is a distinct user with a fresh challenge and TOTP code,
//! prepared outside the timed part; users are enrolled once and log in again, one TOTP step later,
//! in later batches (building their QR codes dominated the run otherwise). The bench deletes its
//! keys when done.
//!
//! After criterion, a `ratio` table alternates, three times per concurrency, a timed batch of
//! logins and `redis-benchmark`'s EVAL at as many clients, and prints the medians and their
//! ratio (a login is two scripts, `open_attempt` and `settle`: 0.5 is one login per two EVALs).
//! Beside it, from the server's `INFO commandstats` over the timed batches: `EVALSHA` calls per
//! login and the server's microseconds per call, and the same for the benchmark's `EVAL`. Other
//! clients of the same server add to these counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use twofactor::LoginContext;

use criterion::{BenchmarkId, Criterion, Throughput};
use twofactor::{
    clock::Clock, clock::Timestamp, store::MemoryEnrollmentStore, store::RedisOtpStore,
    testing::ManualClock, testing::RecordingMailer, totp::totp_code, totp::TotpParams,
    totp::TotpSecret, ChallengeToken, Keyring, LoginStep, TwoFactorService,
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
    /// The users enrolled so far, with their base32 secrets.
    users: std::sync::Mutex<Vec<(String, String)>>,
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
            users: std::sync::Mutex::new(Vec::new()),
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
        let n = usize::try_from(n).unwrap();
        let have = self.users.lock().unwrap().len();
        let mut enrolled = Vec::new();
        for i in have..n {
            let user = format!("bench-{}-{i}", self.run);
            let setup = self.tf.totp().start_setup(&user, &user).await.unwrap();
            let secret = setup.secret_base32().to_owned();
            self.tf
                .totp()
                .confirm_setup(&user, &self.code(&secret))
                .await
                .unwrap();
            enrolled.push((user, secret));
        }
        self.users.lock().unwrap().extend(enrolled);
        // A fresh 30-second step for this batch, after the step of every earlier login and
        // confirmation.
        self.clock.advance(Duration::from_secs(30));
        let users: Vec<(String, String)> =
            self.users.lock().unwrap().iter().take(n).cloned().collect();
        let mut out = Vec::new();
        for (user, secret) in users {
            let LoginStep::Challenge(ch) = self
                .tf
                .begin_login(LoginContext::none(), &user)
                .await
                .unwrap()
            else {
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
                tf.verify_login(LoginContext::none(), &token, &code)
                    .await
                    .expect("login");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// `redis-benchmark`'s rate for an EVAL of a script shaped like the store's primitives (GET,
/// compare, SET with a TTL), at `clients` connections, on the server at `url`: its line, from the
/// requests per second on.
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

fn verify_login_on_redis(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    bench: &Bench,
    url: &str,
) {
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
        match redis_benchmark_eval(url, clients) {
            Some(rate) => println!("redis-benchmark EVAL, {clients} clients: {rate}"),
            None => {
                println!("redis-benchmark EVAL, {clients} clients: not measured (binary absent)")
            }
        }
    }
}

/// The requests per second at the start of a `redis_benchmark_eval` line.
fn rate_of(line: &str) -> Option<f64> {
    line.split_whitespace().next()?.parse().ok()
}

/// Calls and microseconds the server has spent on `command` so far (`INFO commandstats`).
async fn command_stats(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find_map(|l| l.strip_prefix(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("usec"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Logins per second beside EVALs per second at each concurrency, alternated.
fn ratios(rt: &tokio::runtime::Runtime, bench: &Bench, url: &str) {
    const LOGINS: u64 = 10_000;
    const ROUNDS: usize = 3;
    let mut conn = rt.block_on(connect(url));
    println!(
        "\nratio (verify_login logins/s over redis-benchmark EVAL/s, {ROUNDS} alternating rounds \
         of {LOGINS} logins and 50000 EVALs):"
    );
    for clients in CONCURRENCY {
        let (mut logins, mut evals) = (Vec::new(), Vec::new());
        let (mut scripts, mut script_us, mut eval_calls, mut eval_us) = (0, 0, 0, 0);
        for _ in 0..ROUNDS {
            let work = rt.block_on(bench.prepare(LOGINS));
            let before = rt.block_on(command_stats(&mut conn, "evalsha"));
            let took = rt.block_on(verify_all(&bench.tf, work, clients));
            let after = rt.block_on(command_stats(&mut conn, "evalsha"));
            logins.push(LOGINS as f64 / took.as_secs_f64());
            scripts += after.0 - before.0;
            script_us += after.1 - before.1;

            let before = rt.block_on(command_stats(&mut conn, "eval"));
            let Some(rate) = redis_benchmark_eval(url, clients)
                .as_deref()
                .and_then(rate_of)
            else {
                println!("ratio {clients:>2} tasks: not measured (redis-benchmark absent)");
                return;
            };
            let after = rt.block_on(command_stats(&mut conn, "eval"));
            evals.push(rate);
            eval_calls += after.0 - before.0;
            eval_us += after.1 - before.1;
        }
        let (l, e) = (median(logins), median(evals));
        println!(
            "ratio {clients:>2} tasks: {l:>7.0} logins/s  EVAL {e:>7.0}/s  ratio {:.2}  \
             (server: {:.2} EVALSHA per login at {:.1} us each; EVAL {:.1} us each)",
            l / e,
            scripts as f64 / (ROUNDS as u64 * LOGINS) as f64,
            script_us as f64 / scripts.max(1) as f64,
            eval_us as f64 / eval_calls.max(1) as f64,
        );
    }
}

/// Deletes every key of this run (user records are kept for 400 days otherwise).
async fn clean_up(bench: &Bench, url: &str) -> usize {
    let mut conn = connect(url).await;
    let pattern = format!("twofactor-bench:{}:*", bench.run);
    let (mut cursor, mut deleted) = (0u64, 0);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            deleted += keys.len();
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
        }
        if next == 0 {
            return deleted;
        }
        cursor = next;
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let Some(url) = redis_url() else {
        eprintln!("skipped: TWOFACTOR_TEST_REDIS_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = rt.block_on(Bench::new(&url));
    verify_login_on_redis(&mut c, &rt, &bench, &url);
    // `cargo bench` passes --bench; `cargo test --benches` does not, and skips this part.
    if std::env::args().any(|a| a == "--bench") {
        ratios(&rt, &bench, &url);
    }
    let deleted = rt.block_on(clean_up(&bench, &url));
    println!("\ndeleted the run's {deleted} keys");
    c.final_summary();
}
