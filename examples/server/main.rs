//! `cargo run --example server`: the whole two-factor flow behind a JSON API and a web page.
//!
//! With no configuration it listens on 127.0.0.1:8080, keeps everything in memory and prints each
//! email on the console, so a developer can read the codes. Environment:
//!
//! - `PORT`: the port on 127.0.0.1 (default 8080; 0 picks a free one, printed in the banner);
//! - `TWOFACTOR_KEY`: the 32-byte master key, base64 (`Keyring::generate_base64()` makes one);
//!   without it a random key is used and nothing survives a restart;
//! - `REDIS_URL`, `DATABASE_URL`, `SMTP_URL`: stores and mailer of the features built in.
//!
//! Open <http://127.0.0.1:8080/> and register; the API is described in the README.

mod app;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use std::io::Write as _;

use tracing_subscriber::EnvFilter;
use twofactor::{
    DeliveryError, Keyring, Mailer, MemoryEnrollmentStore, MemoryOtpStore, Message, Policy,
    SystemClock,
};

use app::{AppState, Backends, Tokens};

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

    let (keys, tokens) = match env("TWOFACTOR_KEY") {
        Some(key) => {
            let keys = Keyring::from_base64(&key)?;
            banner.push(format!(
                "keys       TWOFACTOR_KEY (key id {})",
                keys.key_id()
            ));
            (keys, Tokens::from_secret(key.trim().as_bytes()))
        }
        None => {
            banner.push(
                "keys       random for this run (set TWOFACTOR_KEY to keep enrolments)".to_owned(),
            );
            (Keyring::generate(), Tokens::random())
        }
    };

    if env("REDIS_URL").is_some() || env("DATABASE_URL").is_some() {
        return Err(
            "REDIS_URL / DATABASE_URL are set, but this crate version has no Redis or \
                    SQL store feature: unset them to run on the memory stores"
                .into(),
        );
    }
    banner.push("otp store  memory (this process only)".to_owned());
    banner.push("enrolments memory (this process only)".to_owned());

    if env("SMTP_URL").is_some() {
        return Err(
            "SMTP_URL is set, but this crate version has no SMTP mailer feature: \
                    unset it to print mail on the console"
                .into(),
        );
    }
    let mailer: Arc<dyn Mailer> = Arc::new(ConsoleMailer);
    banner.push(
        "mailer     console: every message, code included, is printed below (development only)"
            .to_owned(),
    );

    let state = AppState::new(Backends {
        keys,
        otp_store: Arc::new(MemoryOtpStore::new()),
        enrollments: Arc::new(MemoryEnrollmentStore::new()),
        mailer,
        clock: Arc::new(SystemClock),
        policy: Policy::default(),
        tokens,
    })?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("twofactor server example");
    for line in &banner {
        println!("  {line}");
    }
    println!("  listening on http://{addr}/");
    axum::serve(listener, app::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
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
