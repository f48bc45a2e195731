//! What the HTTP tests share: the example's router on the memory stores with a manual clock and a
//! recording mailer ([`Server`]), its replies, a user of the tests and the assertions on errors.

// The library's own software key and browser, shared rather than copied: these tests use only
// part of it.
#[allow(dead_code)]
#[path = "../../../../../tests/it/support/authenticator.rs"]
pub(crate) mod authenticator;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use twofactor::{
    clock::Clock, clock::Timestamp, mail::Mailer, mail::MessagePurpose, store::EnrollmentStore,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, testing::ManualClock,
    testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret, Keyring, Policy,
};

use crate::app::{self, AppState, Backends, HashLimits, Sessions};
use authenticator::SoftKey;

/// Well past 2038.
pub(crate) const START: u64 = 2_200_000_000;
/// Where the browser of the tests opens the page: the origin of the security-key ceremonies.
pub(crate) const SITE: &str = "http://localhost:3000";
pub(crate) const PASSWORD: &str = "correct horse battery";

/// The example's policy for a page served at [`SITE`], as `main.rs` builds it.
fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.security_keys = Some(app::security_key_policy(SITE).unwrap());
    policy
}

/// One answer of the router: status, headers, the body as JSON (`Null` when it is not JSON) and
/// as text.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) json: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The example's router on its own state, with the clock and the mailbox the tests read.
pub(crate) struct Server {
    router: Router,
    pub(crate) state: AppState,
    clock: ManualClock,
    pub(crate) mailer: RecordingMailer,
}

/// A user of the tests, with the tokens of their last sign-in.
pub(crate) struct Account {
    pub(crate) email: String,
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl Server {
    pub(crate) fn new() -> Self {
        let mailer = RecordingMailer::new();
        Self::with_mailer(Arc::new(mailer.clone()), mailer)
    }

    pub(crate) fn with_mailer(mailer: Arc<dyn Mailer>, recording: RecordingMailer) -> Self {
        Self::build(
            mailer,
            recording,
            Arc::new(MemoryOtpStore::new()),
            Arc::new(MemoryEnrollmentStore::new()),
        )
    }

    /// On the memory stores, with an argon2 gate of `concurrent` permits and `queue` places.
    pub(crate) fn with_hash_limits(concurrent: usize, queue: usize) -> Self {
        let mailer = RecordingMailer::new();
        Self::build_with(
            Arc::new(mailer.clone()),
            mailer,
            Arc::new(MemoryOtpStore::new()),
            Arc::new(MemoryEnrollmentStore::new()),
            HashLimits { concurrent, queue },
        )
    }

    /// On these stores, with a recording mailer.
    #[cfg(feature = "sqlite")]
    pub(crate) fn with_stores(
        otp_store: Arc<dyn OtpStore>,
        enrollments: Arc<dyn EnrollmentStore>,
    ) -> Self {
        let mailer = RecordingMailer::new();
        Self::build(Arc::new(mailer.clone()), mailer, otp_store, enrollments)
    }

    fn build(
        mailer: Arc<dyn Mailer>,
        recording: RecordingMailer,
        otp_store: Arc<dyn OtpStore>,
        enrollments: Arc<dyn EnrollmentStore>,
    ) -> Self {
        Self::build_with(
            mailer,
            recording,
            otp_store,
            enrollments,
            HashLimits::from_cores(),
        )
    }

    fn build_with(
        mailer: Arc<dyn Mailer>,
        recording: RecordingMailer,
        otp_store: Arc<dyn OtpStore>,
        enrollments: Arc<dyn EnrollmentStore>,
        hash_limits: HashLimits,
    ) -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        let state = AppState::new(Backends {
            keys: Keyring::generate(),
            otp_store,
            enrollments,
            mailer,
            clock: Arc::new(clock.clone()),
            policy: policy(),
            sessions: Sessions::random(),
            hash_limits,
        })
        .unwrap();
        Server {
            router: app::router(state.clone()),
            state,
            clock,
            mailer: recording,
        }
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// One request; then waits for the mail it sent in the background, so a test reads the
    /// mailer as the user's inbox would be a moment later.
    async fn raw(&self, req: Request<Body>) -> Reply {
        let reply = self.raw_now(req).await;
        self.state.mail_settled().await;
        reply
    }

    /// One request, without waiting for its background work.
    pub(crate) async fn raw_now(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    /// A JSON POST from the client address `ip` (as `ConnectInfo` gives it to the router).
    pub(crate) async fn post_from(&self, ip: &str, uri: &str, body: Value) -> Reply {
        let peer = std::net::SocketAddr::new(ip.parse().unwrap(), 40_000);
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .extension(axum::extract::ConnectInfo(peer))
            .body(Body::from(body.to_string()))
            .unwrap();
        self.raw(req).await
    }

    /// A POST of raw bytes declared as JSON.
    pub(crate) async fn post_bytes(&self, uri: &str, body: impl Into<Body>) -> Reply {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.raw(req).await
    }

    pub(crate) async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call("POST", uri, None, Some(body)).await
    }

    pub(crate) async fn get_auth(&self, uri: &str, token: &str) -> Reply {
        self.call("GET", uri, Some(token), None).await
    }

    pub(crate) async fn post_auth(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call("POST", uri, Some(token), Some(body)).await
    }

    /// The code in the last message of `kind` to `to`.
    pub(crate) fn code_to(&self, to: &str, kind: MessagePurpose) -> String {
        let msg = self
            .mailer
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.to == to && m.purpose == kind)
            .unwrap_or_else(|| panic!("no {kind:?} message to {to}"));
        code_in(&msg.text)
    }

    pub(crate) fn sent_to(&self, to: &str) -> usize {
        self.mailer.messages().iter().filter(|m| m.to == to).count()
    }

    /// Registers `name` and verifies the address: signed in.
    pub(crate) async fn register(&self, name: &str) -> Account {
        let email = format!("{name}@example.com");
        let r = self
            .post(
                "/auth/register",
                json!({"username": name, "password": PASSWORD, "email": email}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let code = self.code_to(&email, MessagePurpose::RegistrationCode);
        let r = self
            .post(
                "/auth/register/verify",
                json!({"username": name, "code": code}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        Account {
            email,
            access: r.json["access_token"].as_str().unwrap().to_owned(),
            refresh: r.json["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn login(&self, name: &str) -> Reply {
        self.post(
            "/auth/login",
            json!({"username": name, "password": PASSWORD}),
        )
        .await
    }

    /// Signs in through a challenge and returns the challenge token.
    pub(crate) async fn challenge(&self, name: &str) -> String {
        let r = self.login(name).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        r.json["challenge"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn answer(&self, challenge: &str, code: &str) -> Reply {
        self.post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "code": code}),
        )
        .await
    }

    /// The TOTP code at now + `offset` seconds.
    pub(crate) fn totp(&self, secret: &str, offset: u64) -> String {
        let secret = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            secret.as_bytes(),
            TotpParams::default(),
            self.clock.now().as_unix_secs() + offset,
        )
    }

    /// Enrols TOTP; returns the secret and the backup codes.
    pub(crate) async fn enrol_totp(&self, account: &Account) -> (String, Vec<String>) {
        let r = self
            .call("POST", "/auth/2fa/totp/setup", Some(&account.access), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let secret = r.json["secret"].as_str().unwrap().to_owned();
        let codes = r.json["backup_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let code = self.totp(&secret, 0);
        let r = self
            .post_auth(
                "/auth/2fa/totp/enable",
                &account.access,
                json!({"code": code}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The next sign-in uses a later step: move past the one just used.
        self.advance(30);
        (secret, codes)
    }

    /// Registers a security key with `key`, as the page does at [`SITE`]: the key's id.
    pub(crate) async fn enrol_key(
        &self,
        account: &Account,
        key: &mut SoftKey,
        label: &str,
    ) -> String {
        let r = self
            .call(
                "POST",
                "/auth/2fa/security-keys/register/start",
                Some(&account.access),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let response = key.create_at(SITE, &r.json).await.unwrap();
        let response: Value = serde_json::from_str(&response).unwrap();
        let r = self
            .post_auth(
                "/auth/2fa/security-keys/register/finish",
                &account.access,
                json!({"response": response, "label": label}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_str().unwrap().to_owned()
    }

    /// The key's assertion for a step-up, as the page makes it: the JSON object.
    pub(crate) async fn key_step_up(&self, account: &Account, key: &mut SoftKey) -> Value {
        let r = self
            .call(
                "POST",
                "/auth/2fa/security-keys/step-up/start",
                Some(&account.access),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.json["publicKey"]["challenge"].is_string(), "{}", r.text);
        serde_json::from_str(&key.get_at(SITE, &r.json).await.unwrap()).unwrap()
    }

    pub(crate) async fn keys(&self, account: &Account) -> Vec<Value> {
        let r = self
            .get_auth("/auth/2fa/security-keys", &account.access)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["security_keys"].as_array().unwrap().clone()
    }

    pub(crate) async fn enrol_email(&self, account: &Account) {
        let r = self
            .post_auth("/auth/2fa/email/setup", &account.access, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let code = self.code_to(&account.email, MessagePurpose::EmailSetupCode);
        let r = self
            .post_auth(
                "/auth/2fa/email/confirm",
                &account.access,
                json!({"code": code}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// The code in a message body: the line that is only digits and spaces.
fn code_in(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit() || c == ' '))
        .map(|l| l.replace(' ', ""))
        .expect("a code line")
}

pub(crate) fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
    assert!(
        r.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {}",
        r.text
    );
}

/// A 429 carries Retry-After, the same number in the body, and it is at least `min` seconds.
pub(crate) fn assert_retry_after(r: &Reply, min: u64) -> u64 {
    let header: u64 = r
        .header(header::RETRY_AFTER)
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(r.json["retry_after"].as_u64(), Some(header));
    assert!(header >= min, "Retry-After {header} < {min}");
    header
}

/// A numeric code that differs from `code`.
pub(crate) fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            let d = c.to_digit(10).unwrap();
            char::from_digit((d + 1) % 10, 10).unwrap()
        })
        .collect()
}
