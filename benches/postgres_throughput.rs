//! `verify_login` (TOTP) throughput with both stores on PostgreSQL (`SqlStore`), at 1, 8 and 64
//! concurrent tasks, beside `pgbench` on the same server in the same run: a script of one upsert
//! per transaction, at as many clients as tasks.
//!
//! Needs `TWOFACTOR_TEST_POSTGRES_URL` (for example `postgres://postgres@127.0.0.1:5432/test`)
//! and the `pgbench` binary; without either the bench prints `skipped: …` and does nothing. It
//! works in a schema of its own, dropped at the end. Users are enrolled once, outside the timed
//! part, and reused: each batch moves the clock on by a TOTP step and opens one challenge per
//! login (also outside the timed part); only `verify_login` is timed.
//!
//! With `TWOFACTOR_BENCH_ASYNC_LOGIN_COMMITS=1` the store commits the login steps with
//! `synchronous_commit = off` (`SqlStoreBuilder::dangerous_asynchronous_login_commits`); pgbench
//! still commits durably. Each login is two statements, so two commits: with durable commits on
//! a server whose WAL flush is slow, 0.5 of pgbench's rate is about the ceiling.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofactor::LoginContext;

use criterion::{BenchmarkId, Criterion, Throughput};
use twofactor::{
    clock::Clock, clock::Timestamp, store::SqlStore, testing::ManualClock,
    testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret, ChallengeToken,
    Keyring, LoginStep, TwoFactorService,
};

const CONCURRENCY: [usize; 3] = [1, 8, 64];

/// How long pgbench runs at each client count.
const PGBENCH_SECONDS: u32 = 5;

fn postgres_url() -> Option<String> {
    std::env::var("TWOFACTOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn async_login_commits() -> bool {
    std::env::var("TWOFACTOR_BENCH_ASYNC_LOGIN_COMMITS").as_deref() == Ok("1")
}

fn pgbench_present() -> bool {
    std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Bench {
    tf: TwoFactorService,
    keys: Keyring,
    url: String,
    /// The service's stores (a clone sharing its pool), to close before pgbench runs.
    store: SqlStore,
    clock: ManualClock,
    /// Enrolled users and their TOTP secrets.
    users: tokio::sync::Mutex<Vec<(String, String)>>,
    next_user: AtomicU64,
    run: String,
    schema: String,
}

impl Bench {
    async fn new(url: &str) -> Self {
        let run = format!("{:08x}", rand_word());
        let schema = format!("twofactor_bench_{run}");
        let store = SqlStore::builder(url)
            .schema(schema.clone())
            .max_connections(CONCURRENCY.into_iter().max().unwrap_or(1) as u32)
            .dangerous_asynchronous_login_commits(async_login_commits())
            .connect()
            .await
            .expect("connect to PostgreSQL");
        store.migrate().await.expect("migrate");
        let clock = ManualClock::new(Timestamp::from_unix_secs(2_000_000_000));
        let keys = Keyring::generate();
        let tf = service(&keys, &store, &clock);
        Bench {
            tf,
            keys,
            url: url.to_owned(),
            store,
            clock,
            users: tokio::sync::Mutex::new(Vec::new()),
            next_user: AtomicU64::new(0),
            run,
            schema,
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

    /// Enrolls users in TOTP until there are `n` (once each, QR codes included).
    async fn enroll_up_to(self: &Arc<Self>, tf: &TwoFactorService, n: usize) {
        let mut users = self.users.lock().await;
        let missing = n.saturating_sub(users.len());
        if missing == 0 {
            return;
        }
        let mut tasks = Vec::new();
        for _ in 0..missing {
            let (this, tf) = (self.clone(), tf.clone());
            tasks.push(tokio::spawn(async move {
                let i = this.next_user.fetch_add(1, Ordering::Relaxed);
                let user = format!("bench-{}-{i}", this.run);
                let setup = tf.totp().start_setup(&user, &user).await.unwrap();
                let secret = setup.secret_base32().to_owned();
                tf.totp()
                    .confirm_setup(&user, &this.code(&secret))
                    .await
                    .unwrap();
                (user, secret)
            }));
        }
        for t in tasks {
            users.push(t.await.unwrap());
        }
    }

    /// `n` logins waiting for their code: each a distinct user with an open challenge, and the
    /// code of a TOTP step none of them has used.
    async fn prepare(self: &Arc<Self>, n: u64) -> Vec<(ChallengeToken, String)> {
        self.prepare_on(&self.tf, n).await
    }

    /// As [`prepare`](Self::prepare), opening the challenges through `tf`.
    async fn prepare_on(
        self: &Arc<Self>,
        tf: &TwoFactorService,
        n: u64,
    ) -> Vec<(ChallengeToken, String)> {
        let n = usize::try_from(n).unwrap();
        self.enroll_up_to(tf, n).await;
        // A fresh step, after every step used so far.
        self.clock.advance(Duration::from_secs(60));
        let users: Vec<(String, String)> =
            self.users.lock().await.iter().take(n).cloned().collect();
        let mut tasks = Vec::new();
        for (user, secret) in users {
            let (this, tf) = (self.clone(), tf.clone());
            tasks.push(tokio::spawn(async move {
                let LoginStep::Challenge(ch) =
                    tf.begin_login(LoginContext::none(), &user).await.unwrap()
                else {
                    panic!("enrolled users get a challenge");
                };
                (ch.token().clone(), this.code(&secret))
            }));
        }
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}

fn service(keys: &Keyring, store: &SqlStore, clock: &ManualClock) -> TwoFactorService {
    TwoFactorService::builder()
        .issuer("Bench")
        .keys(keys.clone())
        .otp_store(store.clone())
        .enrollments(store.clone())
        .mailer(RecordingMailer::new())
        .clock(clock.clone())
        .build()
        .expect("service")
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
    let work = Arc::new(Mutex::new(work));
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

/// pgbench's rate (transactions per second) for one upsert per transaction into a table of the
/// bench's schema, at `clients` connections, with prepared statements like sqlx's.
fn pgbench_upsert(url: &str, schema: &str, clients: usize) -> Option<f64> {
    let script = std::env::temp_dir().join(format!("{schema}-{clients}.sql"));
    std::fs::write(
        &script,
        format!(
            "\\set k random(1, 100000)\n\
             INSERT INTO {schema}.pgbench_upsert (key, n, expires_at) VALUES (:k, 1, 2000000000) \
             ON CONFLICT (key) DO UPDATE SET n = pgbench_upsert.n + 1;\n"
        ),
    )
    .ok()?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-T", &PGBENCH_SECONDS.to_string()])
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.min(threads).to_string()])
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out.ok()?;
    if !out.status.success() {
        eprintln!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn verify_login_on_postgres(c: &mut Criterion) {
    let Some(url) = postgres_url() else {
        eprintln!("skipped: TWOFACTOR_TEST_POSTGRES_URL is not set");
        return;
    };
    if !pgbench_present() {
        eprintln!("skipped: the pgbench binary was not found (PostgreSQL's client tools)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = Arc::new(rt.block_on(Bench::new(&url)));
    // Logins timed and the time they took, per concurrency.
    let timed: Mutex<BTreeMap<usize, (u64, Duration)>> = Mutex::new(BTreeMap::new());
    let mut group = c.benchmark_group("verify_login_postgres");
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
                        let took = verify_all(&bench.tf, work, concurrency).await;
                        let mut timed = timed.lock().unwrap();
                        let entry = timed.entry(concurrency).or_default();
                        entry.0 += iters;
                        entry.1 += took;
                        took
                    })
                });
            },
        );
    }
    group.finish();

    // pgbench's table, in the bench's schema; the service's connections are closed first, so
    // that pgbench's clients fit under the server's connection limit.
    let pool = rt.block_on(async {
        bench.store.close().await;
        let pool = sqlx::PgPool::connect(&url)
            .await
            .expect("connect for pgbench");
        sqlx::raw_sql(&format!(
            "CREATE TABLE {}.pgbench_upsert (key BIGINT PRIMARY KEY, n BIGINT, expires_at BIGINT)",
            bench.schema
        ))
        .execute(&pool)
        .await
        .expect("create the pgbench table");
        pool
    });
    println!();
    println!(
        "login commits: {}",
        if async_login_commits() {
            "asynchronous (synchronous_commit = off)"
        } else {
            "durable (the server's setting)"
        }
    );
    println!(
        "criterion's logins/s beside one later pgbench run (a WAL flush on a shared disk drifts \
         by 10x and more between the two: see the alternated table below)"
    );
    println!("| tasks | verify_login/s | pgbench upsert TPS | ratio |");
    println!("| ---: | ---: | ---: | ---: |");
    for concurrency in CONCURRENCY {
        let (iters, took) = timed
            .lock()
            .unwrap()
            .get(&concurrency)
            .copied()
            .unwrap_or_default();
        let logins = iters as f64 / took.as_secs_f64().max(f64::MIN_POSITIVE);
        match pgbench_upsert(&url, &bench.schema, concurrency) {
            Some(tps) => println!(
                "| {concurrency} | {logins:.0} | {tps:.0} | {:.2} |",
                logins / tps
            ),
            None => println!("| {concurrency} | {logins:.0} | not measured | – |"),
        }
    }
    alternated(&rt, &bench);
    rt.block_on(async {
        sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", bench.schema))
            .execute(&pool)
            .await
            .expect("drop the bench's schema");
        pool.close().await;
    });
}

/// Logins and pgbench in alternation: per concurrency, `ROUNDS` rounds of a timed batch of
/// logins on a fresh pool (closed afterwards, so that pgbench's clients fit under the server's
/// connection limit) and a pgbench run, and the medians of each and of the per-round ratios.
fn alternated(rt: &tokio::runtime::Runtime, bench: &Arc<Bench>) {
    const ROUNDS: usize = 3;
    println!(
        "\nalternated ({ROUNDS} rounds per concurrency: a batch of logins (1,000 at 1 task, 4,000 \
         at 8 and 64), then pgbench for {PGBENCH_SECONDS} s):"
    );
    println!("| tasks | verify_login/s | pgbench upsert TPS | ratio (median of rounds) |");
    println!("| ---: | ---: | ---: | ---: |");
    for concurrency in CONCURRENCY {
        let (mut logins, mut tps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let n = logins_per_round(concurrency);
            let rate = rt.block_on(async {
                // Users and challenges on a pool of their own (untimed), then the logins on a
                // pool of one connection per task.
                let connect = |connections: usize| {
                    SqlStore::builder(&bench.url)
                        .schema(bench.schema.clone())
                        .max_connections(connections as u32)
                        .acquire_timeout(Duration::from_secs(300))
                        .dangerous_asynchronous_login_commits(async_login_commits())
                        .connect()
                };
                let store = connect(16).await.expect("connect to PostgreSQL");
                let work = bench
                    .prepare_on(&service(&bench.keys, &store, &bench.clock), n)
                    .await;
                store.close().await;
                let store = connect(concurrency).await.expect("connect to PostgreSQL");
                let tf = service(&bench.keys, &store, &bench.clock);
                let took = verify_all(&tf, work, concurrency).await;
                store.close().await;
                n as f64 / took.as_secs_f64()
            });
            let Some(pg) = pgbench_upsert(&bench.url, &bench.schema, concurrency) else {
                println!("| {concurrency} | {rate:.0} | not measured | – |");
                return;
            };
            logins.push(rate);
            tps.push(pg);
            ratios.push(rate / pg);
        }
        println!(
            "| {concurrency} | {:.0} | {:.0} | {:.2} |",
            median(logins),
            median(tps),
            median(ratios)
        );
    }
}

/// Logins per alternated round: a few seconds' worth at each concurrency.
fn logins_per_round(concurrency: usize) -> u64 {
    match concurrency {
        1 => 1_000,
        _ => 4_000,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    verify_login_on_postgres(&mut c);
    c.final_summary();
}
