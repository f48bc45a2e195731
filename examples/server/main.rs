//! `cargo run -p twofactor-server-example`: the whole two-factor flow behind a JSON API and a web
//! page.
//!
//! With no configuration it listens on 127.0.0.1:8080, keeps everything in memory (in a SQLite
//! file when built with the `sqlite` feature) and prints each email on the console, so a
//! developer can read the codes. Environment:
//!
//! - `PORT`: the port on 127.0.0.1 (default 8080; 0 picks a free one, printed in the banner);
//! - `PUBLIC_ORIGIN`: the origin the browser opens (default `http://localhost:PORT`), whose host
//!   is the relying party id of security keys and passkeys: a domain name, not an IP address;
//! - `TWOFACTOR_KEY`: the 32-byte master key, base64 (`Keyring::generate_base64()` makes one);
//!   without it a random key is used and nothing survives a restart;
//! - `REDIS_URL` (feature `redis`): the short-lived state on Redis (`RedisOtpStore`);
//! - `DATABASE_URL` (`postgres://…` with feature `postgres`, `sqlite:…` with feature `sqlite`):
//!   the enrolments on SQL (`SqlStore`, migrated at start), and the short-lived state too when
//!   `REDIS_URL` is unset;
//! - `SMTP_URL` (feature `smtp`): mail over SMTP (`SmtpMailer::from_url`) instead of the console.
//!
//! A variable whose feature is not compiled in stops the start with the `--features` to add.
//! Open <http://localhost:8080/> (not 127.0.0.1: security keys need a domain) and register; the
//! API is described in the manual (`twofactor::manual::server`).

mod app;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use std::io::Write as _;

use tracing_subscriber::EnvFilter;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use twofactor::store::SqlStore;
use twofactor::{
    clock::SystemClock, error::DeliveryError, mail::Mailer, mail::Message, store::EnrollmentStore,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, Keyring, Policy,
};

use app::{security_key_policy, AppState, Backends, HashLimits, Sessions};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads an environment variable, treating an empty value as absent.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let port: u16 = match env("PORT") {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        None => 8080,
    };

    let mut banner = Vec::new();

    let (keys, sessions) = match env("TWOFACTOR_KEY") {
        Some(key) => {
            let keys = Keyring::from_base64(&key)?;
            banner.push(format!(
                "keys       TWOFACTOR_KEY (key id {})",
                keys.key_id()
            ));
            (keys, Sessions::from_secret(key.trim().as_bytes()))
        }
        None => {
            banner.push(
                "keys       random for this run (set TWOFACTOR_KEY to keep enrolments)".to_owned(),
            );
            (Keyring::generate(), Sessions::random())
        }
    };

    check_features()?;
    let stores = open_stores(&mut banner).await?;
    let mailer = open_mailer(&mut banner)?;
    banner.push(
        "users      memory: the example's own user table, accounts end with the process".to_owned(),
    );

    let hash_limits = HashLimits::from_cores();
    banner.push(format!(
        "argon2     {} at once, {} waiting, then 503 busy",
        hash_limits.concurrent, hash_limits.queue
    ));

    // Bound first: the security keys' origin names the port, which PORT=0 leaves to the system.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let local = format!("http://localhost:{}", addr.port());
    let (origin, from) = match env("PUBLIC_ORIGIN") {
        Some(origin) => (origin.trim().to_owned(), "PUBLIC_ORIGIN"),
        None => (local.clone(), "set PUBLIC_ORIGIN to serve another"),
    };
    let keys_policy = security_key_policy(&origin).map_err(|e| format!("PUBLIC_ORIGIN: {e}"))?;
    banner.push(format!(
        "webauthn   relying party {} for {} ({from})",
        keys_policy.rp_id,
        keys_policy.origins.join(", ")
    ));
    let mut policy = Policy::default();
    policy.security_keys = Some(keys_policy);

    let state = AppState::new(Backends {
        keys,
        otp_store: Arc::clone(&stores.otp_store),
        enrollments: Arc::clone(&stores.enrollments),
        mailer,
        clock: Arc::new(SystemClock),
        policy,
        sessions,
        hash_limits,
    })?;

    println!("twofactor server example");
    for line in &banner {
        println!("  {line}");
    }
    // localhost, not the bound 127.0.0.1: browsers refuse security keys on an IP address.
    println!("  listening on {local}/ (bound to {addr})");
    // With the peer's address on each request: the per-client limits key on it.
    axum::serve(
        listener,
        app::router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // Mail already promised (registration codes) goes out before the stores close.
    state.mail_settled().await;
    stores.close().await;
    Ok(())
}

/// The SQLite file of a build with the `sqlite` feature when `DATABASE_URL` is unset.
#[cfg(feature = "sqlite")]
const SQLITE_DEFAULT_FILE: &str = "twofactor-demo.db";

/// How often expired short-lived records are deleted when they live in SQL.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
const PURGE_EVERY_MINUTES: u64 = 5;

/// Refuses to start when a variable asks for a store or mailer whose feature this build lacks.
/// The message names the `--features` that cover every variable set, so one rebuild suffices.
/// Runs before anything is connected.
fn check_features() -> Result<(), Box<dyn Error>> {
    // (variable, feature, compiled in)
    let mut wanted: Vec<(&str, &str, bool)> = Vec::new();
    if env("REDIS_URL").is_some() {
        wanted.push(("REDIS_URL", "redis", cfg!(feature = "redis")));
    }
    if let Some(url) = env("DATABASE_URL") {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            wanted.push(("DATABASE_URL", "postgres", cfg!(feature = "postgres")));
        } else if url.starts_with("sqlite:") {
            wanted.push(("DATABASE_URL", "sqlite", cfg!(feature = "sqlite")));
        } else {
            // The value may hold a password: it is not repeated.
            return Err(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
            );
        }
    }
    if env("SMTP_URL").is_some() {
        wanted.push(("SMTP_URL", "smtp", cfg!(feature = "smtp")));
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, _, compiled)| !compiled)
        .map(|(var, _, _)| *var)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // The package's features of the same names (the library's webauthn is always on).
    let features: Vec<&str> = wanted.iter().map(|(_, feature, _)| *feature).collect();
    let (verb, pronoun) = if missing.len() == 1 {
        ("is", "it")
    } else {
        ("are", "them")
    };
    Err(format!(
        "{} {verb} set, but this build lacks the feature: run \
         `cargo run -p twofactor-server-example --features {}`, or unset {pronoun} to run on the \
         defaults (memory stores, console mailer)",
        missing.join(" and "),
        features.join(","),
    )
    .into())
}

/// The stores of this run.
struct Stores {
    /// Short-lived state: Redis, SQL or memory.
    otp_store: Arc<dyn OtpStore>,
    /// Durable factors: SQL or memory.
    enrollments: Arc<dyn EnrollmentStore>,
    /// The SQL store behind either, closed when the server stops.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    sql: Option<SqlStore>,
}

impl Stores {
    /// Closes the SQL pool, if any (SQLite then folds its journal back into the file).
    async fn close(&self) {
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        if let Some(sql) = &self.sql {
            sql.close().await;
        }
    }
}

/// Connects the stores the environment and the features ask for, and says which in `banner`.
async fn open_stores(banner: &mut Vec<String>) -> Result<Stores, Box<dyn Error>> {
    #[cfg(feature = "redis")]
    let redis: Option<Arc<dyn OtpStore>> = match env("REDIS_URL") {
        Some(url) => {
            let shown = redact(&url);
            let store = twofactor::store::RedisOtpStore::connect(url.trim())
                .await
                .map_err(|e| format!("REDIS_URL ({shown}): {e}"))?;
            banner.push(format!(
                "otp store  Redis at {shown} (RedisOtpStore, key prefix {})",
                store.prefix()
            ));
            Some(Arc::new(store))
        }
        None => None,
    };
    // Without the feature, check_features refused a REDIS_URL.
    #[cfg(not(feature = "redis"))]
    let redis: Option<Arc<dyn OtpStore>> = None;

    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    if let Some((sql, place, origin)) = open_sql().await? {
        let otp_store: Arc<dyn OtpStore> = match redis {
            Some(redis) => redis,
            None => {
                banner.push(format!(
                    "otp store  {place} (SqlStore; expired records purged every \
                     {PURGE_EVERY_MINUTES} minutes)"
                ));
                spawn_purge(sql.clone());
                Arc::new(sql.clone())
            }
        };
        banner.push(format!(
            "enrolments {place} (SqlStore, schema migrated; {origin})"
        ));
        return Ok(Stores {
            otp_store,
            enrollments: Arc::new(sql.clone()),
            sql: Some(sql),
        });
    }

    let otp_store = match redis {
        Some(redis) => redis,
        None => {
            banner.push("otp store  memory (this process only)".to_owned());
            Arc::new(MemoryOtpStore::new())
        }
    };
    banner.push("enrolments memory (this process only)".to_owned());
    Ok(Stores {
        otp_store,
        enrollments: Arc::new(MemoryEnrollmentStore::new()),
        #[cfg(any(feature = "postgres", feature = "sqlite"))]
        sql: None,
    })
}

/// The SQL store of `DATABASE_URL`, else (feature `sqlite`) the demo's SQLite file, migrated;
/// with where it is and why, for the banner. `None` without either.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn open_sql() -> Result<Option<(SqlStore, String, &'static str)>, Box<dyn Error>> {
    let (url, place, origin) = match env("DATABASE_URL") {
        Some(url) => {
            let url = url.trim().to_owned();
            let kind = if url.starts_with("sqlite:") {
                "SQLite"
            } else {
                "PostgreSQL"
            };
            let place = format!("{kind} at {}", redact(&url));
            (url, place, "from DATABASE_URL")
        }
        #[cfg(feature = "sqlite")]
        None => {
            let path = std::env::current_dir()?.join(SQLITE_DEFAULT_FILE);
            (
                format!("sqlite://{SQLITE_DEFAULT_FILE}"),
                format!("SQLite file {}", path.display()),
                "the sqlite feature's default; DATABASE_URL picks another database",
            )
        }
        #[cfg(not(feature = "sqlite"))]
        None => return Ok(None),
    };
    let store = SqlStore::connect(url)
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("{place}: migrating the schema: {e}"))?;
    Ok(Some((store, place, origin)))
}

/// Deletes expired short-lived records from time to time; they are already treated as absent,
/// this only reclaims their space.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn spawn_purge(store: SqlStore) {
    use twofactor::clock::Clock as _;
    tokio::spawn(async move {
        let period = std::time::Duration::from_secs(PURGE_EVERY_MINUTES * 60);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            every.tick().await;
            match store.purge_expired(SystemClock.now()).await {
                Ok(n) => tracing::debug!(deleted = n, "expired short-lived records purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
            }
        }
    });
}

/// `SMTP_URL`'s mailer (feature `smtp`), else the console mailer; says which in `banner`.
fn open_mailer(banner: &mut Vec<String>) -> Result<Arc<dyn Mailer>, Box<dyn Error>> {
    #[cfg(feature = "smtp")]
    if let Some(url) = env("SMTP_URL") {
        // Neither the builder's errors nor the banner repeat the password.
        let builder = twofactor::mail::SmtpMailer::from_url(url.trim())
            .map_err(|e| format!("SMTP_URL: {e}"))?;
        let tls = builder.tls_mode();
        let mailer = builder.build().map_err(|e| format!("SMTP_URL: {e}"))?;
        banner.push(format!(
            "mailer     SMTP via {} (SmtpMailer, TLS {tls:?}; connects on the first message)",
            redact(&url)
        ));
        return Ok(Arc::new(mailer));
    }
    banner.push(
        "mailer     console: every message, code included, is printed below (development only)"
            .to_owned(),
    );
    Ok(Arc::new(ConsoleMailer))
}

/// `url` without user, password, query and fragment, fit for the banner and error messages.
#[cfg(any(
    feature = "redis",
    feature = "postgres",
    feature = "sqlite",
    feature = "smtp"
))]
fn redact(url: &str) -> String {
    let url = url.trim();
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => url.to_owned(),
    }
}

/// The development mailer: prints each message, code included, on standard output.
///
/// **Development only**: a real mailer never writes a code anywhere but into the message.
struct ConsoleMailer;

#[async_trait::async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "---- mail to {} (not sent: development mailer) ----\nSubject: {}\n\n{}\n---- end of mail ----",
            message.to,
            message.subject,
            message.text.trim_end()
        )
        .and_then(|()| out.flush())
        .map_err(DeliveryError::transient)
    }
}
