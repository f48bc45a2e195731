//! A soak: a steady mixed load on one store for minutes, reporting per interval the throughput,
//! the p50/p99 latency of an operation, the process RSS and the store's key count, so that
//! bounded memory and steady throughput can be seen (and, with `--assert-plateau`, checked).
//!
//! ```text
//! cargo run --release --example soak -- --minutes 10 --store memory
//! cargo run --release --all-features --example soak -- --minutes 10 --store redis    # TWOFACTOR_TEST_REDIS_URL or --url
//! cargo run --release --all-features --example soak -- --minutes 10 --store postgres # TWOFACTOR_TEST_POSTGRES_URL or --url
//! cargo run --release --example soak -- --seconds 30 --interval 5 --short-ttls --assert-plateau   # CI
//! ```
//!
//! The load is offered at a fixed rate (`--rate`, operations per second, default 100) by at most
//! `--concurrency` operations at a time (default 8); an operation that finds no free slot is
//! counted as shed, not queued. Of every 20 operations: 14 TOTP logins (`begin_login` and
//! `verify_login` with the right code), 4 wrong codes (`begin_login` and a wrong code, the
//! challenge left to expire), 1 email login (every other one starts a login with an emailed
//! code; the other one picks a challenge started at least a resend cooldown ago, asks for a new
//! code with `resend_code` and answers with it), 1 enrolment (a user of a bounded pool disables
//! the previous factor with a backup code, then starts and confirms a new TOTP setup). Users are
//! enrolled first, in pools sized so that no TOTP code is ever reused. Any other outcome is
//! counted as unexpected and printed.
//!
//! Keys: the memory OTP store's records (expired ones are swept by its writes); the Redis keys
//! under the run's own prefix (removed at the end); the PostgreSQL rows of `twofactor_otp` and
//! `twofactor_users` in the run's own schema (dropped at the end), after
//! `SqlStore::purge_expired` as a host would run it. `--short-ttls` shortens the policy's
//! lifetimes (challenge and code 10 s, resend cooldown 2 s) so that a 30-second run reaches the
//! plateau; Redis keeps an expired record 60 s longer (its garbage-collection grace).
// A load driver, not library logic: a failed set-up step ends the run, and Instant is the
// instrument that measures latency and paces the load, not the service's clock.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofactor::LoginContext;

use twofactor::{
    clock::Clock, clock::SystemClock, error::DeliveryError, mail::Mailer, mail::Message,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, totp::totp_code, totp::TotpParams,
    totp::TotpSecret, ChallengeToken, Error, Keyring, LoginStep, Policy, TwoFactorService,
};

const PASSWORD: &str = "soak-password";
const PERIOD: u64 = 30;

#[derive(Clone, Debug)]
struct Args {
    seconds: u64,
    interval: u64,
    store: String,
    url: Option<String>,
    rate: f64,
    concurrency: usize,
    short_ttls: bool,
    assert_plateau: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 600,
        interval: 60,
        store: "memory".into(),
        url: None,
        rate: 100.0,
        concurrency: 8,
        short_ttls: false,
        assert_plateau: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--minutes" => a.seconds = number(&value()) * 60,
            "--seconds" => a.seconds = number(&value()),
            "--interval" => a.interval = number(&value()).max(1),
            "--store" => a.store = value(),
            "--url" => a.url = Some(value()),
            "--rate" => a.rate = number(&value()) as f64,
            "--concurrency" => a.concurrency = number(&value()).max(1) as usize,
            "--short-ttls" => a.short_ttls = true,
            "--assert-plateau" => a.assert_plateau = true,
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if a.rate < 1.0 {
        usage("--rate must be at least 1");
    }
    a
}

fn number(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: soak [--minutes N | --seconds N] [--interval SECS] \
         [--store memory|redis|postgres] [--url URL] [--rate OPS_PER_SEC] [--concurrency N] \
         [--short-ttls] [--assert-plateau]"
    );
    std::process::exit(2)
}

/// A mailer that keeps only the last code sent to each address (a bounded map).
#[derive(Clone, Default)]
struct LastCode(Arc<Mutex<HashMap<String, String>>>);

#[async_trait::async_trait]
impl Mailer for LastCode {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let code = message.text.lines().find_map(|line| {
            let digits: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            ((6..=10).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()))
                .then_some(digits)
        });
        if let Some(code) = code {
            self.0.lock().unwrap().insert(message.to.clone(), code);
        }
        Ok(())
    }
}

impl LastCode {
    fn get(&self, to: &str) -> Option<String> {
        self.0.lock().unwrap().get(to).cloned()
    }
}

/// How the store's records are counted.
enum Keys {
    Memory(Arc<MemoryOtpStore>),
    #[cfg(feature = "redis")]
    Redis {
        conn: redis::aio::MultiplexedConnection,
        prefix: String,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        store: Arc<twofactor::store::SqlStore>,
        pool: sqlx::PgPool,
        schema: String,
    },
}

impl Keys {
    async fn count(&mut self) -> u64 {
        match self {
            Keys::Memory(m) => m.len() as u64,
            #[cfg(feature = "redis")]
            Keys::Redis { conn, prefix } => {
                let mut n = 0u64;
                scan(conn, prefix, |keys| n += keys.len() as u64).await;
                n
            }
            #[cfg(feature = "postgres")]
            Keys::Postgres {
                store,
                pool,
                schema,
            } => {
                store
                    .purge_expired(SystemClock.now())
                    .await
                    .expect("purge_expired");
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT (SELECT count(*) FROM \"{schema}\".twofactor_otp) \
                     + (SELECT count(*) FROM \"{schema}\".twofactor_users)"
                ))
                .fetch_one(&*pool)
                .await
                .expect("count rows");
                n as u64
            }
        }
    }

    async fn clean_up(&mut self) {
        match self {
            Keys::Memory(_) => {}
            #[cfg(feature = "redis")]
            Keys::Redis { conn, prefix } => {
                let mut pages = Vec::new();
                scan(conn, prefix, |keys| pages.push(keys)).await;
                for keys in pages.into_iter().filter(|k| !k.is_empty()) {
                    let _: u64 = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(conn)
                        .await
                        .expect("UNLINK");
                }
            }
            #[cfg(feature = "postgres")]
            Keys::Postgres { pool, schema, .. } => {
                sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .execute(&*pool)
                    .await
                    .expect("drop the soak schema");
            }
        }
    }
}

/// Walks the keys under `prefix` with `SCAN`, a page at a time.
#[cfg(feature = "redis")]
async fn scan(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    mut page: impl FnMut(Vec<String>),
) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .expect("SCAN");
        page(keys);
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A user with a TOTP factor, and the last step the soak has used for it.
struct TotpUser {
    id: String,
    secret: Vec<u8>,
    last_step: AtomicU64,
}

/// Claims the next unused TOTP step of a user within the window (now or the next step), if any.
fn claim(last_step: &AtomicU64, now: u64) -> Option<u64> {
    let current = now / PERIOD;
    loop {
        let last = last_step.load(Ordering::SeqCst);
        let want = current.max(last + 1);
        if want > current + 1 {
            return None;
        }
        if last_step
            .compare_exchange(last, want, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Some(want);
        }
    }
}

impl TotpUser {
    fn code_at_step(&self, step: u64) -> String {
        totp_code(&self.secret, TotpParams::default(), step * PERIOD)
    }
}

/// A user of the enrolment pool: the backup code that will disable the current factor.
struct EnrolUser {
    id: String,
    backup: tokio::sync::Mutex<Option<String>>,
    last_step: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Totp,
    Wrong,
    Email,
    Enrol,
}

/// Of every 20 operations: 14 TOTP, 4 wrong, 1 email, 1 enrolment, spread out.
const MIX: [Kind; 20] = {
    use Kind::*;
    [
        Totp, Totp, Wrong, Totp, Totp, Totp, Email, Totp, Wrong, Totp, Totp, Totp, Wrong, Totp,
        Enrol, Totp, Totp, Wrong, Totp, Totp,
    ]
};

#[derive(Default)]
struct Window {
    latencies_us: Vec<u32>,
    ops: u64,
    unexpected: u64,
    shed: u64,
}

struct Soak {
    tf: TwoFactorService,
    mailer: LastCode,
    totp: Vec<TotpUser>,
    totp_cursor: AtomicUsize,
    wrong_cursor: AtomicUsize,
    email: Vec<String>,
    email_cursor: AtomicUsize,
    pending: Mutex<VecDeque<(Instant, ChallengeToken, String)>>,
    email_turn: AtomicUsize,
    enrol: Vec<EnrolUser>,
    enrol_cursor: AtomicUsize,
    cooldown: Duration,
    window: Mutex<Window>,
    reported: Mutex<HashMap<String, u64>>,
}

impl Soak {
    fn now(&self) -> u64 {
        SystemClock.now().as_unix_secs()
    }

    fn unexpected(&self, what: &str, outcome: &dyn std::fmt::Debug) {
        self.window.lock().unwrap().unexpected += 1;
        let key = format!("{what}: {outcome:?}");
        let mut seen = self.reported.lock().unwrap();
        let n = seen.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            eprintln!("unexpected {key}");
        }
    }

    async fn challenge(&self, user: &str, what: &str) -> Option<twofactor::Challenge> {
        match self.tf.begin_login(LoginContext::none(), user).await {
            Ok(LoginStep::Challenge(c)) => Some(c),
            other => {
                self.unexpected(what, &other.map(|_| ()));
                None
            }
        }
    }

    async fn totp_login(&self) {
        let now = self.now();
        for _ in 0..self.totp.len() {
            let u = &self.totp[self.totp_cursor.fetch_add(1, Ordering::Relaxed) % self.totp.len()];
            let Some(step) = claim(&u.last_step, now) else {
                continue;
            };
            let Some(ch) = self.challenge(&u.id, "totp begin_login").await else {
                return;
            };
            match self
                .tf
                .verify_login(LoginContext::none(), ch.token(), &u.code_at_step(step))
                .await
            {
                Ok(_) => {}
                other => self.unexpected("totp verify_login", &other.map(|_| ())),
            }
            return;
        }
        self.unexpected("totp", &"no user with an unused step: raise the pool");
    }

    async fn wrong_code(&self) {
        let u = &self.totp[self.wrong_cursor.fetch_add(7, Ordering::Relaxed) % self.totp.len()];
        let current = self.now() / PERIOD;
        let window: Vec<String> = (current.saturating_sub(2)..=current + 2)
            .map(|s| u.code_at_step(s))
            .collect();
        let mut guess = 0u32;
        while window.contains(&format!("{guess:06}")) {
            guess += 1;
        }
        let Some(ch) = self.challenge(&u.id, "wrong begin_login").await else {
            return;
        };
        match self
            .tf
            .verify_login(LoginContext::none(), ch.token(), &format!("{guess:06}"))
            .await
        {
            Err(Error::InvalidCode { .. } | Error::Locked { .. }) => {}
            other => self.unexpected("wrong verify_login", &other.map(|_| ())),
        }
    }

    async fn email_login(&self) {
        let ready = {
            let mut pending = self.pending.lock().unwrap();
            match pending.front() {
                Some((at, _, _)) if at.elapsed() > self.cooldown + Duration::from_millis(200) => {
                    pending.pop_front()
                }
                _ => None,
            }
        };
        let finish = self.email_turn.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        match ready {
            Some((_, token, address)) if finish => {
                if let Err(e) = self.tf.resend_code(&token).await {
                    self.unexpected("email resend_code", &e);
                    return;
                }
                let code = self.mailer.get(&address).unwrap_or_default();
                if let Err(e) = self
                    .tf
                    .verify_login(LoginContext::none(), &token, &code)
                    .await
                {
                    self.unexpected("email verify_login", &e);
                }
            }
            ready => {
                if let Some(back) = ready {
                    self.pending.lock().unwrap().push_front(back);
                }
                let i = self.email_cursor.fetch_add(1, Ordering::Relaxed) % self.email.len();
                let user = &self.email[i];
                if let Some(ch) = self.challenge(user, "email begin_login").await {
                    let address = format!("{user}@example.com");
                    self.pending.lock().unwrap().push_back((
                        Instant::now(),
                        ch.token().clone(),
                        address,
                    ));
                }
            }
        }
    }

    async fn enrolment(&self) {
        for _ in 0..self.enrol.len() {
            let u =
                &self.enrol[self.enrol_cursor.fetch_add(1, Ordering::Relaxed) % self.enrol.len()];
            let Ok(mut backup) = u.backup.try_lock() else {
                continue;
            };
            let Some(step) = claim(&u.last_step, self.now()) else {
                continue;
            };
            if let Some(code) = backup.take() {
                if let Err(e) = self.tf.account().disable(&u.id, PASSWORD, &code).await {
                    self.unexpected("enrol disable", &e);
                    return;
                }
            }
            let setup = match self
                .tf
                .totp()
                .start_setup(&u.id, &format!("{}@example.com", u.id))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    self.unexpected("enrol start_totp_setup", &e);
                    return;
                }
            };
            let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
            let code = totp_code(secret.as_bytes(), TotpParams::default(), step * PERIOD);
            match self.tf.totp().confirm_setup(&u.id, &code).await {
                Ok(()) => *backup = Some(setup.backup_codes()[0].expose().to_owned()),
                Err(e) => self.unexpected("enrol confirm_totp_setup", &e),
            }
            return;
        }
        self.unexpected("enrol", &"no free user: raise the pool");
    }

    async fn run(&self, kind: Kind) {
        let start = Instant::now();
        match kind {
            Kind::Totp => self.totp_login().await,
            Kind::Wrong => self.wrong_code().await,
            Kind::Email => self.email_login().await,
            Kind::Enrol => self.enrolment().await,
        }
        let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let mut w = self.window.lock().unwrap();
        w.latencies_us.push(us);
        w.ops += 1;
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn random_word() -> String {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    format!("{h:016x}")
}

async fn stores(
    args: &Args,
) -> (
    Arc<dyn twofactor::store::OtpStore>,
    Arc<dyn twofactor::store::EnrollmentStore>,
    Keys,
) {
    #[cfg_attr(
        not(any(feature = "redis", feature = "postgres")),
        allow(unused_variables)
    )]
    let env_url = |var: &str| {
        args.url
            .clone()
            .or_else(|| std::env::var(var).ok())
            .unwrap_or_else(|| usage(&format!("--store {} needs --url or {var}", args.store)))
    };
    match args.store.as_str() {
        "memory" => {
            let otp = Arc::new(MemoryOtpStore::new());
            (
                otp.clone(),
                Arc::new(MemoryEnrollmentStore::new()),
                Keys::Memory(otp),
            )
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let url = env_url("TWOFACTOR_TEST_REDIS_URL");
            let prefix = format!("twofactor-soak:{}:", random_word());
            let otp = twofactor::store::RedisOtpStore::builder(url.clone())
                .prefix(prefix.clone())
                .connect()
                .await
                .expect("connect to Redis");
            let conn = redis::Client::open(url)
                .expect("Redis URL")
                .get_multiplexed_async_connection()
                .await
                .expect("connect to Redis");
            (
                Arc::new(otp),
                Arc::new(MemoryEnrollmentStore::new()),
                Keys::Redis { conn, prefix },
            )
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let url = env_url("TWOFACTOR_TEST_POSTGRES_URL");
            let schema = format!("twofactor_soak_{}", random_word());
            let store = Arc::new(
                twofactor::store::SqlStore::builder(url.clone())
                    .schema(schema.clone())
                    .max_connections(args.concurrency as u32 + 2)
                    .connect()
                    .await
                    .expect("connect to PostgreSQL"),
            );
            store.migrate().await.expect("migrate");
            let pool = sqlx::PgPool::connect(&url)
                .await
                .expect("connect to PostgreSQL");
            (
                store.clone(),
                store.clone(),
                Keys::Postgres {
                    store,
                    pool,
                    schema,
                },
            )
        }
        other => usage(&format!(
            "unknown or not compiled store {other} (redis and postgres need --all-features)"
        )),
    }
}

/// Runs `f` over `0..n` on `width` tasks.
async fn for_each<F, Fut>(n: usize, width: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for first in 0..width.min(n) {
        let f = f.clone();
        tasks.spawn(async move {
            for i in (first..n).step_by(width) {
                f(i).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("an enrolment task panicked");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let mut policy = Policy::default();
    policy.max_sends = 1_000;
    if args.short_ttls {
        policy.challenge_ttl = Duration::from_secs(10);
        policy.email_code_ttl = Duration::from_secs(10);
        policy.resend_cooldown = Duration::from_secs(2);
        policy.totp_setup_ttl = Duration::from_secs(10);
    }
    let cooldown = policy.resend_cooldown;
    let (otp, enrollments, mut keys) = stores(&args).await;
    let mailer = LastCode::default();
    let tf = TwoFactorService::builder()
        .issuer("Soak")
        .keys(Keyring::generate())
        .otp_store(otp)
        .enrollments(enrollments)
        .mailer(mailer.clone())
        .policy(policy)
        .password_verifier(|_user: &str, password: &str| password == PASSWORD)
        .build()
        .expect("build the service");

    // Pool sizes: a TOTP user logs in at most once a step, an email user's challenge waits a
    // cooldown before its resend, an enrolment user is revisited after a step has passed.
    let run_tag = random_word();
    let totp_n = ((args.rate * 0.7 * 2.0 * PERIOD as f64) as usize).max(128);
    let email_n = ((args.rate * 0.05 * 4.0 * (cooldown.as_secs_f64() + 2.0)) as usize).max(64);
    let enrol_n = ((args.rate * 0.05 * 3.0 * PERIOD as f64) as usize).max(64);
    eprintln!(
        "soak: store {}, {} s, {} ops/s offered, concurrency {}, interval {} s; enrolling {} TOTP \
         and {} email users; enrolment pool {}",
        args.store,
        args.seconds,
        args.rate,
        args.concurrency,
        args.interval,
        totp_n,
        email_n,
        enrol_n
    );
    let setup_started = Instant::now();
    let totp_users: Arc<Vec<Mutex<Option<TotpUser>>>> =
        Arc::new((0..totp_n).map(|_| Mutex::new(None)).collect());
    let (t, users, tag) = (tf.clone(), totp_users.clone(), run_tag.clone());
    for_each(totp_n, 16, move |i| {
        let (tf, users, run_tag) = (t.clone(), users.clone(), tag.clone());
        async move {
            let id = format!("soak-{run_tag}-totp-{i}");
            let setup = tf
                .totp()
                .start_setup(&id, &format!("{id}@example.com"))
                .await
                .expect("start_totp_setup");
            let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
            let step = SystemClock.now().as_unix_secs() / PERIOD;
            let code = totp_code(secret.as_bytes(), TotpParams::default(), step * PERIOD);
            tf.totp()
                .confirm_setup(&id, &code)
                .await
                .expect("confirm_totp_setup");
            *users[i].lock().unwrap() = Some(TotpUser {
                id,
                secret: secret.as_bytes().to_vec(),
                last_step: AtomicU64::new(step),
            });
        }
    })
    .await;
    let email: Vec<String> = (0..email_n)
        .map(|i| format!("soak-{run_tag}-email-{i}"))
        .collect();
    let (t, m, users) = (tf.clone(), mailer.clone(), Arc::new(email.clone()));
    for_each(email_n, 16, move |i| {
        let (tf, mailer, users) = (t.clone(), m.clone(), users.clone());
        async move {
            let user = &users[i];
            let address = format!("{user}@example.com");
            tf.email()
                .start_setup(user, &address)
                .await
                .expect("start_email_setup");
            let code = mailer.get(&address).expect("a setup code");
            tf.email()
                .confirm_setup(user, &code)
                .await
                .expect("confirm_email_setup");
        }
    })
    .await;
    let enrol: Arc<Vec<EnrolUser>> = Arc::new(
        (0..enrol_n)
            .map(|i| EnrolUser {
                id: format!("soak-{run_tag}-enrol-{i}"),
                backup: tokio::sync::Mutex::new(None),
                last_step: AtomicU64::new(0),
            })
            .collect(),
    );
    let (t, users) = (tf.clone(), enrol.clone());
    for_each(enrol_n, 16, move |i| {
        let (tf, users) = (t.clone(), users.clone());
        async move {
            let u = &users[i];
            let setup = tf
                .totp()
                .start_setup(&u.id, &format!("{}@example.com", u.id))
                .await
                .expect("start_totp_setup");
            let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
            let step = SystemClock.now().as_unix_secs() / PERIOD;
            let code = totp_code(secret.as_bytes(), TotpParams::default(), step * PERIOD);
            tf.totp()
                .confirm_setup(&u.id, &code)
                .await
                .expect("confirm_totp_setup");
            u.last_step.store(step, Ordering::SeqCst);
            *u.backup.lock().await = Some(setup.backup_codes()[0].expose().to_owned());
        }
    })
    .await;
    eprintln!(
        "soak: enrolled in {:.1} s",
        setup_started.elapsed().as_secs_f64()
    );

    let soak = Arc::new(Soak {
        tf,
        mailer,
        totp: Arc::try_unwrap(totp_users)
            .ok()
            .expect("the enrolment tasks are done")
            .into_iter()
            .map(|m| m.into_inner().unwrap().expect("every TOTP user enrolled"))
            .collect(),
        totp_cursor: AtomicUsize::new(0),
        wrong_cursor: AtomicUsize::new(0),
        email,
        email_cursor: AtomicUsize::new(0),
        pending: Mutex::new(VecDeque::new()),
        email_turn: AtomicUsize::new(0),
        enrol: Arc::try_unwrap(enrol)
            .ok()
            .expect("the enrolment tasks are done"),
        enrol_cursor: AtomicUsize::new(0),
        cooldown,
        window: Mutex::new(Window::default()),
        reported: Mutex::new(HashMap::new()),
    });

    println!(
        "| t (s) | ops/s | p50 (ms) | p99 (ms) | RSS (MiB) | keys | shed | unexpected |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let base_keys = keys.count().await;
    let base_rss = rss_mib();
    println!("| 0 | – | – | – | {base_rss:.1} | {base_keys} | – | – |");
    // The offered load: one operation per tick, shed when every slot is busy.
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let driver = {
        let (soak, slots, rate) = (soak.clone(), slots.clone(), args.rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0usize;
            loop {
                tick.tick().await;
                let kind = MIX[i % MIX.len()];
                i += 1;
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let soak = soak.clone();
                        tokio::spawn(async move {
                            soak.run(kind).await;
                            drop(permit);
                        });
                    }
                    Err(_) => soak.window.lock().unwrap().shed += 1,
                }
            }
        })
    };

    let started = Instant::now();
    let mut rows: Vec<(f64, u64, f64, u64)> = Vec::new(); // (ops/s, keys, rss, unexpected)
    let mut elapsed = 0;
    let mut last = Instant::now();
    while elapsed < args.seconds {
        let step = args.interval.min(args.seconds - elapsed);
        tokio::time::sleep_until((started + Duration::from_secs(elapsed + step)).into()).await;
        elapsed += step;
        let w = std::mem::take(&mut *soak.window.lock().unwrap());
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        let mut lat = w.latencies_us;
        lat.sort_unstable();
        let n = keys.count().await;
        let rss = rss_mib();
        let ops = w.ops as f64 / secs;
        println!(
            "| {elapsed} | {ops:.1} | {:.2} | {:.2} | {rss:.1} | {n} | {} | {} |",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            w.shed,
            w.unexpected
        );
        rows.push((ops, n, rss, w.unexpected));
    }
    driver.abort();
    // Let the operations in flight finish before cleaning up.
    let _ = slots.acquire_many(args.concurrency as u32).await;
    keys.clean_up().await;

    let unexpected: u64 = rows.iter().map(|r| r.3).sum();
    if args.assert_plateau {
        let mid = &rows[rows.len() / 2];
        let end = &rows[rows.len() - 1];
        // Growth over the enrolled baseline: the records the load keeps alive must stop
        // growing once their lifetimes have passed.
        let floor = rows.iter().map(|r| r.1).fold(base_keys, u64::min);
        let grown = |k: u64| k.saturating_sub(floor) as f64;
        let keys_ok = grown(end.1) <= grown(mid.1) * 1.15 + 10.0;
        let rss_ok = end.2 <= mid.2 * 1.25 + 8.0;
        let rate_ok = end.0 >= args.rate * 0.8;
        println!(
            "plateau: keys {} enrolled, {} at the lowest, {} at mid-run, {} at the end ({}); RSS {:.1} -> {:.1} MiB ({}); \
             throughput {:.1} ops/s of {} offered ({}); unexpected outcomes {}",
            base_keys,
            floor,
            mid.1,
            end.1,
            if keys_ok { "ok" } else { "GROWING" },
            mid.2,
            end.2,
            if rss_ok { "ok" } else { "GROWING" },
            end.0,
            args.rate,
            if rate_ok { "ok" } else { "LOW" },
            unexpected
        );
        if !(keys_ok && rss_ok && rate_ok && unexpected == 0) {
            std::process::exit(1);
        }
    } else if unexpected > 0 {
        println!("unexpected outcomes: {unexpected}");
        std::process::exit(1);
    }
}
