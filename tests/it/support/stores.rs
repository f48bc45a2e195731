//! Shared set-up of the store test suites: servers from the environment, per-run isolation.
//!
//! - `TWOFACTOR_TEST_REDIS_URL`, `TWOFACTOR_TEST_POSTGRES_URL`,
//!   `TWOFACTOR_TEST_REDIS_CLUSTER_URLS`: the servers. Absent: the server-backed tests skip,
//!   and say so on the real standard error (see [`skip`](super::skip)).
//! - `TWOFACTOR_REQUIRE_SERVERS=1` (set by CI): an absent URL is a failure instead.
//! - `TWOFACTOR_TEST_PG_SCHEMA_PREFIX`: the prefix of the per-process PostgreSQL schema
//!   (default `tf_test`), so a CI run can drop its own schemas afterwards.
// A build without every store feature leaves the helpers of the stores it lacks unused.
#![cfg_attr(
    not(all(feature = "redis", feature = "postgres", feature = "sqlite")),
    allow(dead_code)
)]

use std::sync::OnceLock;
use std::time::Duration;

use twofactor::Error;

use super::skip::{self, Decision};

/// The URL in `var`, or `None` when the test should skip (after saying so); a failure when it
/// is absent and servers are required.
fn server_url(var: &str) -> Option<String> {
    match skip::decide(
        std::env::var(var).ok().as_deref(),
        std::env::var("TWOFACTOR_REQUIRE_SERVERS").ok().as_deref(),
    ) {
        Decision::Run(url) => Some(url),
        Decision::Fail => {
            panic!("{var} is not set but TWOFACTOR_REQUIRE_SERVERS=1: the server-backed suite must run")
        }
        Decision::Skip => {
            skip::skipped(&format!("server-backed tests: {var} not set"), None);
            None
        }
    }
}

/// The Redis URL, or `None` (after saying so) when the suite should skip.
pub(crate) fn redis_url() -> Option<String> {
    server_url("TWOFACTOR_TEST_REDIS_URL")
}

/// The PostgreSQL URL, or `None` (after saying so) when the suite should skip.
pub(crate) fn postgres_url() -> Option<String> {
    server_url("TWOFACTOR_TEST_POSTGRES_URL")
}

/// The seed URLs of a Redis Cluster (`TWOFACTOR_TEST_REDIS_CLUSTER_URLS`, comma-separated), or
/// `None` (after saying so) when the suite should skip.
pub(crate) fn redis_cluster_urls() -> Option<Vec<String>> {
    let urls = server_url("TWOFACTOR_TEST_REDIS_CLUSTER_URLS")?;
    Some(
        urls.split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// A random hex word.
pub(crate) fn random_word() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A key prefix of its own for one store instance, so runs and tests never share keys.
pub(crate) fn redis_prefix() -> String {
    format!("twofactor-test:{}:", random_word())
}

/// The PostgreSQL schema of this test process: one per process, named for this run.
pub(crate) fn pg_schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let prefix =
            std::env::var("TWOFACTOR_TEST_PG_SCHEMA_PREFIX").unwrap_or_else(|_| "tf_test".into());
        format!("{prefix}_{}_{}", std::process::id(), random_word())
    })
}

/// A SQLite database file of this test process, under cargo's temporary directory for tests.
pub(crate) fn sqlite_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!(
            "twofactor-{}-{}.db",
            std::process::id(),
            random_word()
        ));
        format!("sqlite://{}", path.display())
    })
}

#[cfg(feature = "redis")]
pub(crate) async fn redis_store() -> Option<twofactor::store::RedisOtpStore> {
    let url = redis_url()?;
    Some(
        twofactor::store::RedisOtpStore::builder(url)
            .prefix(redis_prefix())
            .connect()
            .await
            .expect("connect to the test Redis"),
    )
}

/// A store on the test Redis Cluster, under a prefix of its own.
#[cfg(feature = "redis-cluster")]
pub(crate) async fn redis_cluster_store() -> Option<twofactor::store::RedisOtpStore> {
    let urls = redis_cluster_urls()?;
    Some(
        twofactor::store::RedisOtpStore::cluster_builder(urls)
            .prefix(redis_prefix())
            .connect()
            .await
            .expect("connect to the test Redis Cluster"),
    )
}

/// A Redis enrolment store on the test Redis, under a prefix of its own. The test Redis runs
/// without persistence: these tests prove the semantics, not durability.
#[cfg(feature = "redis")]
pub(crate) async fn redis_enrollment_store() -> Option<twofactor::store::RedisEnrollmentStore> {
    Some(redis_store().await?.enrollment_store())
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres_store() -> Option<twofactor::store::SqlStore> {
    let url = postgres_url()?;
    let store = twofactor::store::SqlStore::builder(url)
        .schema(pg_schema())
        .max_connections(8)
        .connect()
        .await
        .expect("connect to the test PostgreSQL");
    store.migrate().await.expect("migrate");
    Some(store)
}

/// As [`postgres_store`], with the login steps committed asynchronously
/// (`dangerous_asynchronous_login_commits`): the same invariants must hold.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres_store_async_login_commits() -> Option<twofactor::store::SqlStore> {
    let url = postgres_url()?;
    let store = twofactor::store::SqlStore::builder(url)
        .schema(pg_schema())
        .max_connections(8)
        .dangerous_asynchronous_login_commits(true)
        .connect()
        .await
        .expect("connect to the test PostgreSQL");
    store.migrate().await.expect("migrate");
    Some(store)
}

#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite_store() -> Option<twofactor::store::SqlStore> {
    let store = twofactor::store::SqlStore::builder(sqlite_url())
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("open the test SQLite file");
    store.migrate().await.expect("migrate");
    Some(store)
}

/// A two-thread runtime for a test that blocks on it.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub(crate) fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The store error inside `e`, or a failure naming what came instead.
pub(crate) fn store_error(e: Error) -> twofactor::error::StoreError {
    match e {
        Error::Store(s) => s,
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// Whether `e` keeps its cause (a non-empty `source()` chain).
pub(crate) fn has_source(e: &dyn std::error::Error) -> bool {
    e.source().is_some()
}

/// A timeout that must fire: for a server that cannot answer (a silent port, a stopped
/// process), where it bounds how long the test waits for the typed timeout it checks. Never
/// for a call that must succeed: a loaded machine may take longer than this to answer.
pub(crate) const SHORT: Duration = Duration::from_millis(500);

/// A timeout for calls that must succeed, and the deadline of a wait for a server to come up:
/// long enough for a loaded machine, so that reaching it means something is wrong.
pub(crate) const PATIENT: Duration = Duration::from_secs(30);

/// Calls `attempt` until it gives `Some`, pausing briefly between tries; a failure naming
/// `what` when [`PATIENT`] passes first.
pub(crate) async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let until_some = async {
        loop {
            if let Some(value) = attempt().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    match tokio::time::timeout(PATIENT, until_some).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not within {PATIENT:?}"),
    }
}

/// A `redis-server` child process on a port of its own (no persistence unless asked), killed
/// when dropped.
#[cfg(feature = "redis")]
pub(crate) struct OwnRedis {
    child: Option<std::process::Child>,
    port: u16,
}

#[cfg(feature = "redis")]
impl OwnRedis {
    /// Starts `redis-server` on `port`; `None` (after saying so) when the binary is missing
    /// and servers are not required.
    pub(crate) fn start(port: u16) -> Option<Self> {
        Self::spawn(port, &["--save", "", "--appendonly", "no"])
    }

    /// Starts `redis-server` on `port` with an append-only file in `dir`, synced on every write
    /// (`appendfsync always`), as a durable enrolment store needs; as [`OwnRedis::start`]
    /// otherwise. Started again on the same `dir`, it loads what it wrote.
    pub(crate) fn start_durable(port: u16, dir: &std::path::Path) -> Option<Self> {
        let dir = dir.to_str().expect("a UTF-8 temporary path");
        Self::spawn(
            port,
            &[
                "--save",
                "",
                "--dir",
                dir,
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        )
    }

    fn spawn(port: u16, config: &[&str]) -> Option<Self> {
        use std::process::{Command, Stdio};
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Some(OwnRedis {
                child: Some(child),
                port,
            }),
            Err(e) if skip::servers_required() => panic!("redis-server could not be started: {e}"),
            Err(e) => {
                skip::skipped(
                    "server-backed tests: redis-server could not be started",
                    Some(&e.to_string()),
                );
                None
            }
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the server process.
    pub(crate) fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Connects, waiting (up to [`PATIENT`]) for the server to accept, with patient timeouts:
    /// a call fails at once when the server is gone, and waits for a slow one.
    pub(crate) async fn connect(&self) -> twofactor::store::RedisOtpStore {
        self.connect_timing_out_after(PATIENT).await
    }

    /// As [`OwnRedis::connect`], with connect and response timeouts of `timeout`: [`SHORT`]
    /// for a handle whose calls must time out on the stalled server.
    pub(crate) async fn connect_timing_out_after(
        &self,
        timeout: Duration,
    ) -> twofactor::store::RedisOtpStore {
        wait_for(
            "the redis-server started by the test accepts a connection",
            || async {
                twofactor::store::RedisOtpStore::builder(self.url())
                    .connect_timeout(timeout)
                    .response_timeout(timeout)
                    .reconnect_attempts(1)
                    .connect()
                    .await
                    .ok()
            },
        )
        .await
    }
}

#[cfg(feature = "redis")]
impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`STOP`, `CONT`, …) to process `pid`, with `kill(1)`.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// A PostgreSQL cluster of the test's own: `initdb` on a temporary data directory and `pg_ctl`
/// on a free loopback port (trust authentication, no fsync). Run as the `postgres` user when the
/// tests run as root. Stopped and removed when dropped.
#[cfg(feature = "postgres")]
pub(crate) struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    as_root: bool,
}

#[cfg(feature = "postgres")]
impl OwnPostgres {
    /// The newest `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`, else `PATH`.
    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut dirs: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        dirs.sort();
        if let Some((_, bin)) = dirs.pop() {
            return Some(bin);
        }
        let out = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()?;
        let bin = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        bin.join("initdb").exists().then_some(bin)
    }

    /// Creates and starts the cluster; `None` (after saying so) when the binaries are
    /// missing and servers are not required.
    pub(crate) fn start() -> Option<Self> {
        let Some(bin) = Self::bin_dir() else {
            assert!(
                !skip::servers_required(),
                "initdb/pg_ctl not found but TWOFACTOR_REQUIRE_SERVERS=1"
            );
            skip::skipped(
                "server-backed tests: initdb/pg_ctl (PostgreSQL server binaries) not found",
                None,
            );
            return None;
        };
        let uid = std::process::Command::new("id").arg("-u").output().ok()?;
        let as_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = std::env::temp_dir().join(format!("twofactor-pg-{}", random_word()));
        std::fs::create_dir(&dir).expect("create the cluster directory");
        let pg = OwnPostgres {
            bin,
            dir,
            port: dead_port(),
            as_root,
        };
        if as_root {
            let owned = std::process::Command::new("chown")
                .args(["postgres:postgres", pg.dir.to_str().unwrap()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(owned, "chown of the cluster directory to postgres failed");
        }
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// A server binary's command, run as `postgres` when the tests run as root.
    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    /// Runs a server binary (as `postgres` when root), failing the test if it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL binary");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub(crate) fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no clean shutdown, like a crash).
    pub(crate) fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// The postmaster and its server processes (from `postmaster.pid` and `ps --ppid`).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .expect("read postmaster.pid");
        let main: u32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let out = std::process::Command::new("ps")
            .args(["-o", "pid=", "--ppid", &main.to_string()])
            .output()
            .expect("run ps");
        let mut pids = vec![main];
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the cluster's `postgres` database through `port` (the server's own, or a
    /// proxy's).
    pub(crate) fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }
}

#[cfg(feature = "postgres")]
impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
