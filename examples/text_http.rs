//! The shape of a text (SMS) sender over a vendor's HTTP API, with reqwest, run against a local
//! mock vendor in the same process: phone setup, a login by text code, and a vendor outage.
//!
//! Run with `cargo run --example text_http`. The crate ships no vendor SDK: a real sender is
//! this file's `HttpTextSender` with the vendor's URL, auth header and JSON fields.
//!
//! NIST SP 800-63B makes SMS a *restricted* authenticator (SIM swaps, number porting,
//! interception): offer it beside a TOTP app or a security key, which are stronger.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofactor::LoginContext;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use twofactor::{
    async_trait, error::DeliveryError, mail::LogMailer, store::MemoryEnrollmentStore,
    store::MemoryOtpStore, text::TextMessage, text::TextSender, Error, Keyring, LoginStep, Method,
    TwoFactorService,
};

/// Sends each text as `POST {endpoint}` with a bearer key and `{"to": "+49…", "body": "…"}`.
struct HttpTextSender {
    client: reqwest::Client,
    endpoint: String,
    api_key: String,
}

impl HttpTextSender {
    fn new(endpoint: String, api_key: String) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(HttpTextSender {
            client,
            endpoint,
            api_key,
        })
    }
}

#[async_trait]
impl TextSender for HttpTextSender {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        let reply = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.api_key)
            .json(&serde_json::json!({ "to": text.to.as_e164(), "body": text.body }))
            .send()
            .await
            // Connection refused, timeout: maybe not sent, may work later.
            .map_err(|e| DeliveryError::transient(e.without_url()))?;
        let status = reply.status();
        if status.is_success() {
            return Ok(());
        }
        // Never put the body of our request (it holds the code) into the error.
        let e = format!("the SMS vendor answered {status}");
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(DeliveryError::transient(e))
        } else {
            Err(DeliveryError::permanent(e))
        }
    }
}

/// The mock vendor: checks the key, keeps each text in an outbox (the user's phone), and can be
/// switched off to answer 503.
#[derive(Clone, Default)]
struct Vendor {
    outbox: Arc<Mutex<Vec<(String, String)>>>,
    down: Arc<AtomicBool>,
}

#[derive(serde::Deserialize)]
struct Sms {
    to: String,
    body: String,
}

async fn receive(State(v): State<Vendor>, headers: HeaderMap, Json(sms): Json<Sms>) -> StatusCode {
    if v.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some("Bearer test-key") {
        return StatusCode::UNAUTHORIZED;
    }
    v.outbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((sms.to, sms.body));
    StatusCode::ACCEPTED
}

impl Vendor {
    /// The code in the last text to `to`, as the user reads it.
    fn last_code(&self, to: &str) -> Option<String> {
        let outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let (_, body) = outbox.iter().rev().find(|(t, _)| t == to)?;
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() >= 6)
            .map(str::to_owned)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vendor = Vendor::default();
    let app = Router::new()
        .route("/v1/messages", post(receive))
        .with_state(vendor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1/messages", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(LogMailer)
        .text_sender(HttpTextSender::new(endpoint, "test-key".into())?)
        .build()?;

    // Enrol a phone: the number is proven by a texted code.
    tf.sms().start_setup("alice", "+49 170 123-4567").await?;
    let code = vendor.last_code("+491701234567").ok_or("no setup text")?;
    let number = tf.sms().confirm_setup("alice", &code).await?;
    println!("phone enrolled: {number}");

    // Log in: the code goes by text.
    let LoginStep::Challenge(challenge) = tf.begin_login(LoginContext::none(), "alice").await?
    else {
        return Err("expected a challenge".into());
    };
    assert!(challenge.text_sent());
    let code = vendor.last_code("+491701234567").ok_or("no login text")?;
    let verified = tf
        .verify_login(LoginContext::none(), challenge.token(), &code)
        .await?;
    assert_eq!(verified.method(), Some(Method::Sms));
    println!("signed in by {}", Method::Sms);

    // The vendor is down: the login fails closed with a transient delivery error.
    vendor.down.store(true, Ordering::SeqCst);
    match tf.begin_login(LoginContext::none(), "alice").await {
        Err(e @ Error::Delivery(_)) => {
            assert!(e.is_transient());
            println!(
                "vendor down: {} ({}), retry later",
                e.code(),
                e.http_status()
            );
        }
        other => return Err(format!("expected a delivery error, got {other:?}").into()),
    }
    Ok(())
}
