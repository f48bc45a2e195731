//! HTTP tests of the server example (`examples/server`): every endpoint and every documented
//! error, through the example's own router in process (`tower::ServiceExt::oneshot`), on the
//! memory stores (and, with the `sqlite` feature, once on `SqlStore` over a SQLite file), a
//! manual clock and a recording mailer. No port is opened.

#[allow(dead_code)]
#[path = "../../examples/server/app/mod.rs"]
mod app;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use twofactor::{
    clock::Clock, clock::Timestamp, error::DeliveryError, mail::Mailer, mail::Message,
    mail::MessagePurpose, store::EnrollmentStore, store::MemoryEnrollmentStore,
    store::MemoryOtpStore, store::OtpStore, testing::ManualClock, testing::RecordingMailer,
    totp::totp_code, totp::TotpParams, totp::TotpSecret, Keyring, Policy,
};

use app::{AppState, Backends, HashLimits, Sessions};

use crate::support::authenticator::SoftKey;

/// Well past 2038.
const START: u64 = 2_200_000_000;
/// Where the browser of the tests opens the page: the origin of the security-key ceremonies.
const SITE: &str = "http://localhost:3000";
const PASSWORD: &str = "correct horse battery";

/// The example's policy for a page served at [`SITE`], as `main.rs` builds it.
fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.security_keys = Some(app::security_key_policy(SITE).unwrap());
    policy
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    text: String,
}

impl Reply {
    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Server {
    router: Router,
    state: AppState,
    clock: ManualClock,
    mailer: RecordingMailer,
}

/// A user of the tests, with the tokens of their last sign-in.
struct Account {
    email: String,
    access: String,
    refresh: String,
}

impl Server {
    fn new() -> Self {
        let mailer = RecordingMailer::new();
        Self::with_mailer(Arc::new(mailer.clone()), mailer)
    }

    fn with_mailer(mailer: Arc<dyn Mailer>, recording: RecordingMailer) -> Self {
        Self::build(
            mailer,
            recording,
            Arc::new(MemoryOtpStore::new()),
            Arc::new(MemoryEnrollmentStore::new()),
        )
    }

    /// On the memory stores, with an argon2 gate of `concurrent` permits and `queue` places.
    fn with_hash_limits(concurrent: usize, queue: usize) -> Self {
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
    fn with_stores(otp_store: Arc<dyn OtpStore>, enrollments: Arc<dyn EnrollmentStore>) -> Self {
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

    fn advance(&self, secs: u64) {
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
    async fn raw_now(&self, req: Request<Body>) -> Reply {
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

    async fn call(
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
    async fn post_from(&self, ip: &str, uri: &str, body: Value) -> Reply {
        let peer = std::net::SocketAddr::new(ip.parse().unwrap(), 40_000);
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .extension(axum::extract::ConnectInfo(peer))
            .body(Body::from(body.to_string()))
            .unwrap();
        self.raw(req).await
    }

    /// A POST of raw bytes declared as JSON.
    async fn post_bytes(&self, uri: &str, body: impl Into<Body>) -> Reply {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.raw(req).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call("POST", uri, None, Some(body)).await
    }

    async fn get_auth(&self, uri: &str, token: &str) -> Reply {
        self.call("GET", uri, Some(token), None).await
    }

    async fn post_auth(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call("POST", uri, Some(token), Some(body)).await
    }

    /// The code in the last message of `kind` to `to`.
    fn code_to(&self, to: &str, kind: MessagePurpose) -> String {
        let msg = self
            .mailer
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.to == to && m.purpose == kind)
            .unwrap_or_else(|| panic!("no {kind:?} message to {to}"));
        code_in(&msg.text)
    }

    fn sent_to(&self, to: &str) -> usize {
        self.mailer.messages().iter().filter(|m| m.to == to).count()
    }

    /// Registers `name` and verifies the address: signed in.
    async fn register(&self, name: &str) -> Account {
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

    async fn login(&self, name: &str) -> Reply {
        self.post(
            "/auth/login",
            json!({"username": name, "password": PASSWORD}),
        )
        .await
    }

    /// Signs in through a challenge and returns the challenge token.
    async fn challenge(&self, name: &str) -> String {
        let r = self.login(name).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        r.json["challenge"].as_str().unwrap().to_owned()
    }

    async fn answer(&self, challenge: &str, code: &str) -> Reply {
        self.post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "code": code}),
        )
        .await
    }

    /// The TOTP code at now + `offset` seconds.
    fn totp(&self, secret: &str, offset: u64) -> String {
        let secret = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            secret.as_bytes(),
            TotpParams::default(),
            self.clock.now().as_unix_secs() + offset,
        )
    }

    /// Enrols TOTP; returns the secret and the backup codes.
    async fn enrol_totp(&self, account: &Account) -> (String, Vec<String>) {
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
    async fn enrol_key(&self, account: &Account, key: &mut SoftKey, label: &str) -> String {
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
    async fn key_step_up(&self, account: &Account, key: &mut SoftKey) -> Value {
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

    async fn keys(&self, account: &Account) -> Vec<Value> {
        let r = self
            .get_auth("/auth/2fa/security-keys", &account.access)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["security_keys"].as_array().unwrap().clone()
    }

    async fn enrol_email(&self, account: &Account) {
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

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
    assert!(
        r.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {}",
        r.text
    );
}

/// A 429 carries Retry-After, the same number in the body, and it is at least `min` seconds.
fn assert_retry_after(r: &Reply, min: u64) -> u64 {
    let header: u64 = r
        .header(header::RETRY_AFTER)
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(r.json["retry_after"].as_u64(), Some(header));
    assert!(header >= min, "Retry-After {header} < {min}");
    header
}

// ---- the page ----------------------------------------------------------------------------------

#[tokio::test]
async fn page_and_assets_are_served_with_security_headers() {
    let s = Server::new();
    let r = s.call("GET", "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text.contains(r#"inputmode="numeric""#));
    assert!(r.text.contains(r#"autocomplete="one-time-code""#));
    assert!(r.text.contains(r#"name="viewport""#));
    assert!(r.text.contains("Use a backup code instead"));
    assert!(r.text.contains("Use security key") && r.text.contains("Add security key"));
    let csp = r.header(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));

    let r = s.call("GET", "/app.js", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.text.contains("/auth/login/two-factor"));
    assert!(r.text.contains("parseRequestOptionsFromJSON"));
    let r = s.call("GET", "/style.css", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/css"));

    let r = s.call("GET", "/no/such/page", None, None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

// ---- registration ------------------------------------------------------------------------------

#[tokio::test]
async fn register_verify_then_sign_in_without_second_factor() {
    let s = Server::new();
    let r = s
        .post(
            "/auth/register",
            json!({"username": "Alice", "password": PASSWORD, "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json["status"], "verification_sent");
    assert_eq!(r.json["code_expires_in"], 300);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));

    // Not yet verified: no sign-in, and the answer is the one for a wrong password.
    let r = s.login("alice").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");

    let code = s.code_to("alice@example.com", MessagePurpose::RegistrationCode);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = s
        .post(
            "/auth/register/verify",
            json!({"username": "alice", "code": wrong}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post(
            "/auth/register/verify",
            json!({"username": "ALICE", "code": code}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 900);
    let access = r.json["access_token"].as_str().unwrap();

    let me = s.get_auth("/auth/me", access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["username"], "alice");
    assert_eq!(me.json["email"], "alice@example.com");
    let st = s.get_auth("/auth/2fa/status", access).await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.json["enabled"], false);
    assert_eq!(st.json["methods"], json!([]));
    assert_eq!(st.json["backup_codes_remaining"], 0);

    // The code is spent.
    let r = s
        .post(
            "/auth/register/verify",
            json!({"username": "alice", "code": code}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // No second factor: the password is the whole login.
    let r = s.login("alice").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["access_token"].as_str().unwrap().starts_with("eyJ"));
    assert!(r.json["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("rt1_"));
    assert!(r.json.get("two_fa_required").is_none());
}

#[tokio::test]
async fn registration_answers_alike_whether_or_not_the_username_is_taken() {
    let s = Server::new();
    s.register("bob").await;
    let free = s
        .post(
            "/auth/register",
            json!({"username": "carol", "password": PASSWORD, "email": "carol@example.com"}),
        )
        .await;
    let taken = s
        .post(
            "/auth/register",
            json!({"username": "BOB", "password": PASSWORD, "email": "mallory@example.com"}),
        )
        .await;
    assert_eq!(free.status, taken.status);
    assert_eq!(free.json, taken.json);
    // Only the free name got a code.
    assert_eq!(s.sent_to("carol@example.com"), 1);
    assert_eq!(s.sent_to("mallory@example.com"), 0);

    // Verifying a taken name, an unknown name or a wrong code: one answer.
    let taken = s
        .post(
            "/auth/register/verify",
            json!({"username": "bob", "code": "123456"}),
        )
        .await;
    let unknown = s
        .post(
            "/auth/register/verify",
            json!({"username": "nobody", "code": "123456"}),
        )
        .await;
    let real = s.code_to("carol@example.com", MessagePurpose::RegistrationCode);
    let wrong = if real == "123456" { "654321" } else { "123456" };
    let wrong = s
        .post(
            "/auth/register/verify",
            json!({"username": "carol", "code": wrong}),
        )
        .await;
    for r in [&taken, &unknown] {
        assert_eq!(r.status, wrong.status);
        assert_eq!(r.json, wrong.json);
    }
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_code");
    // Bob's account is untouched: his password still signs him in.
    assert_eq!(s.login("bob").await.status, StatusCode::OK);
}

#[tokio::test]
async fn one_address_is_not_mailed_again_and_again_under_new_names() {
    let s = Server::new();
    for i in 0..6 {
        let r = s
            .post(
                "/auth/register",
                json!({"username": format!("user{i}"), "password": PASSWORD, "email": "victim@example.com"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    assert_eq!(s.sent_to("victim@example.com"), 3);
    // Once the waiting registrations lapse (an hour), the address can be used again.
    s.advance(3600);
    let r = s
        .post(
            "/auth/register",
            json!({"username": "user9", "password": PASSWORD, "email": "victim@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(s.sent_to("victim@example.com"), 4);
}

/// Registrations that were verified no longer wait, so the waiting cap alone would let an
/// address be mailed again at once: the per-address mail budget (3 an hour) still holds.
#[tokio::test]
async fn an_address_gets_at_most_three_registration_mails_an_hour() {
    let s = Server::new();
    for i in 0..3 {
        let name = format!("zed{i}");
        s.post(
            "/auth/register",
            json!({"username": name, "password": PASSWORD, "email": "zed@example.com"}),
        )
        .await;
        let code = s.code_to("zed@example.com", MessagePurpose::RegistrationCode);
        let r = s
            .post(
                "/auth/register/verify",
                json!({"username": name, "code": code}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = s
        .post(
            "/auth/register",
            json!({"username": "zed9", "password": PASSWORD, "email": "ZED@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        s.sent_to("zed@example.com") + s.sent_to("ZED@example.com"),
        3
    );
    s.advance(3600);
    s.post(
        "/auth/register",
        json!({"username": "zed10", "password": PASSWORD, "email": "zed@example.com"}),
    )
    .await;
    assert_eq!(s.sent_to("zed@example.com"), 4);
}

#[tokio::test]
async fn registration_refuses_bad_input() {
    let s = Server::new();
    let cases = [
        json!({"username": "x", "password": PASSWORD, "email": "x@example.com"}),
        json!({"username": "has space", "password": PASSWORD, "email": "x@example.com"}),
        json!({"username": "dave", "password": "short", "email": "dave@example.com"}),
        json!({"username": "dave", "password": PASSWORD, "email": "not an address"}),
        json!({"username": "dave", "password": PASSWORD}),
        json!({"username": 7, "password": PASSWORD, "email": "dave@example.com"}),
    ];
    for body in cases {
        let r = s.post("/auth/register", body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let r = s.post_bytes("/auth/register", "{not json").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s.post_bytes("/auth/login", vec![b' '; 64 * 1024]).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert!(s.mailer.messages().is_empty());
}

#[tokio::test]
async fn a_failing_mailer_answers_alike_and_leaves_no_account() {
    struct Down;
    #[async_trait]
    impl Mailer for Down {
        async fn send(&self, _: &Message) -> Result<(), DeliveryError> {
            Err(DeliveryError::transient("connection refused"))
        }
    }
    let s = Server::with_mailer(Arc::new(Down), RecordingMailer::new());
    let up = Server::new();
    let body = json!({"username": "erin", "password": PASSWORD, "email": "erin@example.com"});
    let down = s.post("/auth/register", body.clone()).await;
    let fine = up.post("/auth/register", body).await;
    // The mail goes out after the answer: a mailer failure is logged, never answered, so it
    // cannot tell a free name (mailed) from a taken one (not mailed).
    assert_eq!(down.status, StatusCode::ACCEPTED, "{}", down.text);
    assert_eq!(down.json, fine.json);
    assert!(!down.text.contains("connection refused"));
    assert_error(
        &s.login("erin").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

// ---- login -------------------------------------------------------------------------------------

#[tokio::test]
async fn login_failures_never_reveal_whether_the_user_exists() {
    let s = Server::new();
    s.register("frank").await;
    let wrong_password = s
        .post(
            "/auth/login",
            json!({"username": "frank", "password": "wrong password"}),
        )
        .await;
    let unknown = s
        .post(
            "/auth/login",
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await;
    let unusable = s
        .post(
            "/auth/login",
            json!({"username": "?", "password": "wrong password"}),
        )
        .await;
    assert_error(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    for r in [&unknown, &unusable] {
        assert_eq!(r.status, wrong_password.status);
        assert_eq!(r.json, wrong_password.json);
    }
    let r = s.post("/auth/login", json!({"username": "frank"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn totp_setup_enable_and_sign_in() {
    let s = Server::new();
    let grace = s.register("grace").await;

    // Nothing pending yet.
    let r = s
        .post_auth(
            "/auth/2fa/totp/enable",
            &grace.access,
            json!({"code": "123456"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    let r = s
        .call("POST", "/auth/2fa/totp/setup", Some(&grace.access), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        TotpSecret::from_base32(&secret).unwrap().as_bytes().len(),
        20
    );
    let uri = r.json["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/twofactor%20demo:grace?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")));
    assert!(r.json["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = r.json["qr_png"]
        .as_str()
        .unwrap()
        .strip_prefix("data:image/png;base64,")
        .unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(png)
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let codes = r.json["backup_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 14));

    let st = s.get_auth("/auth/2fa/status", &grace.access).await;
    assert_eq!(st.json["totp_pending"], true);
    assert_eq!(st.json["enabled"], false);

    // A wrong code does not enable; a malformed one is refused as such.
    let right = s.totp(&secret, 0);
    let wrong = crate::support::wrong(&right);
    let r = s
        .post_auth(
            "/auth/2fa/totp/enable",
            &grace.access,
            json!({"code": wrong}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post_auth(
            "/auth/2fa/totp/enable",
            &grace.access,
            json!({"code": "12ab"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post_auth(
            "/auth/2fa/totp/enable",
            &grace.access,
            json!({"code": right}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["methods"], json!(["totp", "backup_code"]));
    assert_eq!(r.json["backup_codes_remaining"], 10);
    assert_eq!(r.json["totp_confirmed_at"], START);

    // A second setup is refused while TOTP is on.
    let r = s
        .call("POST", "/auth/2fa/totp/setup", Some(&grace.access), None)
        .await;
    assert_error(&r, StatusCode::CONFLICT, "already_enrolled");

    // Sign in: 202 with a challenge.
    let r = s.login("grace").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["two_fa_required"], true);
    assert_eq!(r.json["methods"], json!(["totp", "backup_code"]));
    assert_eq!(r.json["expires_in"], 300);
    assert!(r.json.get("access_token").is_none());
    assert!(r.json.get("resend_after").is_none());
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();

    // The code used to enable is a replay.
    let r = s.answer(&challenge, &right).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s.answer(&challenge, &wrong).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    s.advance(30);
    let next = s.totp(&secret, 0);
    let r = s
        .answer(&challenge, &format!("{} {}", &next[..3], &next[3..]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "totp");
    assert_eq!(r.json["backup_codes_remaining"], 10);
    let access = r.json["access_token"].as_str().unwrap();
    assert_eq!(
        s.get_auth("/auth/me", access).await.json["username"],
        "grace"
    );
    let st = s.get_auth("/auth/2fa/status", access).await;
    assert_eq!(st.json["last_verified_at"], START + 30);

    // The challenge is spent.
    let r = s.answer(&challenge, &s.totp(&secret, 30)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
}

#[tokio::test]
async fn a_backup_code_signs_in_once() {
    let s = Server::new();
    let heidi = s.register("heidi").await;
    let (_, codes) = s.enrol_totp(&heidi).await;

    let challenge = s.challenge("heidi").await;
    // Case and dashes do not matter.
    let typed = codes[0].replace('-', "").to_lowercase();
    let r = s.answer(&challenge, &typed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "backup_code");
    assert_eq!(r.json["backup_codes_remaining"], 9);

    let challenge = s.challenge("heidi").await;
    let r = s.answer(&challenge, &codes[0]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let st = s.get_auth("/auth/2fa/status", &heidi.access).await;
    assert_eq!(st.json["backup_codes_remaining"], 9);
}

#[tokio::test]
async fn challenges_are_bounded_in_attempts_and_time() {
    let s = Server::new();
    let ivan = s.register("ivan").await;
    let (secret, _) = s.enrol_totp(&ivan).await;
    let right = s.totp(&secret, 0);
    let wrong = if right == "999999" {
        "999998"
    } else {
        "999999"
    };

    // Five attempts per challenge, then it is void even for the right code.
    let challenge = s.challenge("ivan").await;
    for _ in 0..5 {
        assert_error(
            &s.answer(&challenge, wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        );
    }
    let r = s.answer(&challenge, &right).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");

    // Expiry: five minutes. Expired or gone, the answer is the uniform one.
    let challenge = s.challenge("ivan").await;
    s.advance(300);
    let r = s.answer(&challenge, &s.totp(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.error() == "invalid_code", "{}", r.text);
    assert_eq!(r.json["message"], "The code is invalid or has expired.");

    // Malformed input.
    let r = s.answer("not a challenge", &right).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let challenge = s.challenge("ivan").await;
    let r = s.answer(&challenge, "").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s.answer(&challenge, &"9".repeat(1000)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post("/auth/login/two-factor", json!({"challenge": challenge}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn repeated_failures_lock_the_code_step_with_retry_after() {
    let s = Server::new();
    let judy = s.register("judy").await;
    let (secret, _) = s.enrol_totp(&judy).await;
    let right = s.totp(&secret, 0);
    let wrong = if right == "999999" {
        "999998"
    } else {
        "999999"
    };

    // Wrong codes across fresh challenges (a new challenge resets nothing) until the user is
    // locked: then both the code step and the next sign-in answer 429 locked with Retry-After.
    let mut failures = 0;
    let mut locked = None;
    'outer: while failures < 50 {
        let r = s.login("judy").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            locked = Some(r);
            break;
        }
        let challenge = r.json["challenge"].as_str().unwrap().to_owned();
        for _ in 0..4 {
            let r = s.answer(&challenge, wrong).await;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                locked = Some(r);
                break 'outer;
            }
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
            failures += 1;
        }
    }
    let r = locked.expect("the user is locked after repeated failures");
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "locked");
    assert_eq!(failures, 10, "the default threshold");
    assert_retry_after(&r, 60);
    let r = s.login("judy").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "locked");
    let wait = assert_retry_after(&r, 60);
    // … but a wrong password still gets the plain answer: no password, no information.
    let r = s
        .post(
            "/auth/login",
            json!({"username": "judy", "password": "wrong password"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");

    s.advance(wait);
    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &s.totp(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

// ---- email codes, resend, step-up --------------------------------------------------------------

#[tokio::test]
async fn email_factor_login_with_resend_cooldown() {
    let s = Server::new();
    let kim = s.register("kim").await;

    let r = s
        .post_auth(
            "/auth/2fa/email/setup",
            &kim.access,
            json!({"email": "nope"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .post_auth(
            "/auth/2fa/email/confirm",
            &kim.access,
            json!({"code": "123456"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post_auth("/auth/2fa/email/setup", &kim.access, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["email"], "kim@example.com");
    let code = s.code_to("kim@example.com", MessagePurpose::EmailSetupCode);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = s
        .post_auth(
            "/auth/2fa/email/confirm",
            &kim.access,
            json!({"code": wrong}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post_auth(
            "/auth/2fa/email/confirm",
            &kim.access,
            json!({"code": code}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["methods"], json!(["email"]));
    assert_eq!(r.json["email"], "kim@example.com");
    let r = s
        .post_auth("/auth/2fa/email/setup", &kim.access, json!({}))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "already_enrolled");

    // Sign in: the code is mailed at once; the answer carries the countdowns.
    s.advance(60);
    let r = s.login("kim").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["methods"], json!(["email"]));
    assert_eq!(r.json["email_sent"], true);
    assert_eq!(r.json["email_hint"], "k••••@example.com");
    assert_eq!(r.json["code_expires_in"], 300);
    assert_eq!(r.json["resend_after"], 60);
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();
    let first = s.code_to("kim@example.com", MessagePurpose::LoginCode);

    // Resend inside the cooldown: 429 with Retry-After.
    let r = s
        .post("/auth/login/resend", json!({"challenge": challenge}))
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "cooldown");
    assert_eq!(assert_retry_after(&r, 1), 60);
    s.advance(45);
    let r = s
        .post("/auth/login/resend", json!({"challenge": challenge}))
        .await;
    assert_eq!(assert_retry_after(&r, 1), 15);
    s.advance(15);
    let r = s
        .post("/auth/login/resend", json!({"challenge": challenge}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["resend_after"], 60);
    let second = s.code_to("kim@example.com", MessagePurpose::LoginCode);

    // The new code replaced the old one.
    if first != second {
        let r = s.answer(&challenge, &first).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    }
    let r = s.answer(&challenge, &second).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "email");

    // Resend for a bad or spent challenge.
    let r = s
        .post("/auth/login/resend", json!({"challenge": "x"}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post("/auth/login/resend", json!({"challenge": challenge}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
}

#[tokio::test]
async fn resend_without_an_email_factor_and_the_send_cap() {
    let s = Server::new();
    let leo = s.register("leo").await;
    let (_, _) = s.enrol_totp(&leo).await;
    let challenge = s.challenge("leo").await;
    let r = s
        .post("/auth/login/resend", json!({"challenge": challenge}))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "no_email_method");

    // A user with email codes: sends are capped per window; the cap answers 429 rate_limited.
    let mia = s.register("mia").await;
    s.enrol_email(&mia).await;
    s.advance(60);
    let challenge = s.challenge("mia").await;
    let mut capped = None;
    for _ in 0..10 {
        s.advance(61);
        let r = s
            .post("/auth/login/resend", json!({"challenge": challenge}))
            .await;
        if r.status != StatusCode::ACCEPTED {
            capped = Some(r);
            break;
        }
    }
    let r = capped.expect("the send cap is reached");
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_retry_after(&r, 1);
}

/// The statuses the README lists for `/auth/login/resend` besides 202, 404 and 429 (above).
#[tokio::test]
async fn resend_refuses_bad_bodies_and_challenges() {
    let s = Server::new();
    let r = s.post("/auth/login/resend", json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    for challenge in ["tfc1_garbage", "", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let r = s
            .post("/auth/login/resend", json!({"challenge": challenge}))
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    }
    let r = s
        .post_bytes("/auth/login/resend", vec![b' '; 64 * 1024])
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
}

#[tokio::test]
async fn step_up_code_regenerates_backup_codes_and_old_codes_die() {
    let s = Server::new();
    let nia = s.register("nia").await;
    let r = s
        .call("POST", "/auth/2fa/step-up", Some(&nia.access), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_enrolled");
    let r = s
        .post_auth(
            "/auth/2fa/backup-codes/regenerate",
            &nia.access,
            json!({"code": "123456"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_enrolled");

    let (_, old) = s.enrol_totp(&nia).await;
    s.enrol_email(&nia).await;
    s.advance(60);
    let r = s
        .call("POST", "/auth/2fa/step-up", Some(&nia.access), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let code = s.code_to("nia@example.com", MessagePurpose::SecurityCode);
    let r = s
        .post_auth(
            "/auth/2fa/backup-codes/regenerate",
            &nia.access,
            json!({"code": code}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let fresh: Vec<String> = r.json["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !old.contains(c)));

    // An old code no longer works; a new one does.
    let challenge = s.challenge("nia").await;
    assert_error(
        &s.answer(&challenge, &old[3]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    let r = s.answer(&challenge, &fresh[3]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["backup_codes_remaining"], 9);
}

#[tokio::test]
async fn disable_needs_the_password_and_a_code() {
    let s = Server::new();
    let olga = s.register("olga").await;
    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &olga.access,
            json!({"password": PASSWORD, "code": "123456"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_enrolled");

    let (secret, codes) = s.enrol_totp(&olga).await;
    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &olga.access,
            json!({"password": "wrong password", "code": codes[0]}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_password");
    let right = s.totp(&secret, 0);
    let wrong = crate::support::wrong(&right);
    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &olga.access,
            json!({"password": PASSWORD, "code": wrong}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &olga.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(
        s.get_auth("/auth/2fa/status", &olga.access).await.json["enabled"],
        true
    );

    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &olga.access,
            json!({"password": PASSWORD, "code": codes[1]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], false);
    assert_eq!(r.json["methods"], json!([]));
    // The password alone signs in again.
    assert_eq!(s.login("olga").await.status, StatusCode::OK);
}

// ---- session tokens ----------------------------------------------------------------------------

/// Every endpoint that needs an access token.
const PROTECTED: [(&str, &str); 16] = [
    ("GET", "/auth/me"),
    ("GET", "/auth/2fa/status"),
    ("POST", "/auth/2fa/totp/setup"),
    ("POST", "/auth/2fa/totp/enable"),
    ("POST", "/auth/2fa/email/setup"),
    ("POST", "/auth/2fa/email/confirm"),
    ("POST", "/auth/2fa/step-up"),
    ("POST", "/auth/2fa/disable"),
    ("POST", "/auth/2fa/backup-codes/regenerate"),
    ("POST", "/auth/2fa/reauthenticate"),
    ("GET", "/auth/2fa/security-keys"),
    ("POST", "/auth/2fa/security-keys/register/start"),
    ("POST", "/auth/2fa/security-keys/register/finish"),
    ("POST", "/auth/2fa/security-keys/step-up/start"),
    ("PATCH", "/auth/2fa/security-keys/sk_AAAAAAAAAAAAAAAA"),
    ("DELETE", "/auth/2fa/security-keys/sk_AAAAAAAAAAAAAAAA"),
];

#[tokio::test]
async fn protected_endpoints_need_an_access_token() {
    let s = Server::new();
    for (method, uri) in PROTECTED {
        let r = s
            .call(
                method,
                uri,
                None,
                Some(json!({"code": "123456", "password": PASSWORD})),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.header(header::WWW_AUTHENTICATE), Some("Bearer"), "{uri}");
        let r = s.call(method, uri, Some("garbage"), None).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Wrong method on a route: not an open door either.
    let r = s.call("POST", "/auth/me", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn challenge_refresh_and_access_tokens_are_not_interchangeable() {
    let s = Server::new();
    let pat = s.register("pat").await;
    s.enrol_totp(&pat).await;
    let challenge = s.challenge("pat").await;

    // A challenge is not an access token, nor is a refresh token.
    for token in [&challenge, &pat.refresh] {
        let r = s.get_auth("/auth/me", token).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // An access or refresh token is not a challenge.
    for token in [&pat.access, &pat.refresh] {
        let r = s.answer(token, "123456").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    }
    // An access token cannot refresh.
    let r = s
        .post("/auth/refresh", json!({"refresh_token": pat.access}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    let r = s
        .post("/auth/refresh", json!({"refresh_token": challenge}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");

    // A tampered access token is refused.
    let mut tampered = pat.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = s.get_auth("/auth/me", &tampered).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // Access tokens expire after 15 minutes.
    assert_eq!(
        s.get_auth("/auth/me", &pat.access).await.status,
        StatusCode::OK
    );
    s.advance(15 * 60);
    let r = s.get_auth("/auth/me", &pat.access).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn refresh_rotates_and_logout_revokes() {
    let s = Server::new();
    let quinn = s.register("quinn").await;

    let r = s
        .post("/auth/refresh", json!({"refresh_token": quinn.refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, quinn.refresh);
    assert_eq!(s.get_auth("/auth/me", &access).await.status, StatusCode::OK);

    // The spent refresh token is refused.
    let r = s
        .post("/auth/refresh", json!({"refresh_token": quinn.refresh}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");

    // Logout revokes; a second logout is harmless.
    let r = s
        .post("/auth/logout", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    let r = s
        .post("/auth/logout", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s
        .post("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    let r = s.post("/auth/logout", json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");

    // Refresh tokens expire after seven days.
    let r = s.login("quinn").await;
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    s.advance(7 * 24 * 3600);
    let r = s
        .post("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
}

/// A SQLite file of its own in the temporary directory, deleted (with its journal) on drop.
#[cfg(feature = "sqlite")]
struct TempDatabase(std::path::PathBuf);

#[cfg(feature = "sqlite")]
impl TempDatabase {
    fn new() -> Self {
        let name = format!(
            "twofactor-server-http-{}-{:016x}.db",
            std::process::id(),
            rand::random::<u64>()
        );
        TempDatabase(std::env::temp_dir().join(name))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

#[cfg(feature = "sqlite")]
impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The example's state over `SqlStore` on a SQLite file, as `cargo run --example server
/// --features webauthn,sqlite` runs it: registration, TOTP enrolment and sign-in with TOTP and with a
/// backup code go through the file, where a second connection finds what they wrote.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_flows_run_over_sql_store_on_a_sqlite_file() {
    use twofactor::store::SqlStore;

    let db = TempDatabase::new();
    let store = SqlStore::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let s = Server::with_stores(Arc::new(store.clone()), Arc::new(store.clone()));

    let judy = s.register("judy").await;
    let id = s.get_auth("/auth/me", &judy.access).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (secret, codes) = s.enrol_totp(&judy).await;

    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &s.totp(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "totp");
    // The challenge was taken from the file: it cannot be answered twice.
    let r = s.answer(&challenge, &s.totp(&secret, 30)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &codes[0]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "backup_code");
    assert_eq!(r.json["backup_codes_remaining"], 9);
    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &codes[0]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // A second connection to the file sees the confirmed factor and the spent code.
    let other = SqlStore::connect(db.url()).await.unwrap();
    let (record, _) = other
        .load(&id)
        .await
        .unwrap()
        .expect("the enrolment is in the file");
    assert!(record.totp.is_some());
    assert!(record.pending_totp.is_none());
    assert_eq!(other.backup_codes_remaining(&id).await.unwrap(), 9);
    other.close().await;
    store.close().await;
}

// ---- what an attacker tried against the example (each fails on the example before the fix) ----

/// Re-registering a pending name replaced the pending registration: a victim's registration
/// could be taken over, each round mailed the address again with a fresh budget of code guesses.
#[tokio::test]
async fn a_pending_registration_is_neither_taken_over_nor_renewed() {
    let s = Server::new();
    let r = s
        .post(
            "/auth/register",
            json!({"username": "vic", "password": PASSWORD, "email": "vic@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let code = s.code_to("vic@example.com", MessagePurpose::RegistrationCode);
    // The attacker registers the same name with an address and a password of their own.
    let r2 = s
        .post(
            "/auth/register",
            json!({"username": "vic", "password": "attacker password", "email": "evil@example.com"}),
        )
        .await;
    assert_eq!(
        (r2.status, &r2.json),
        (r.status, &r.json),
        "the same answer"
    );
    assert_eq!(s.sent_to("evil@example.com"), 0);
    // And floods the victim's address with the same name: one mail, as before.
    for _ in 0..24 {
        s.post(
            "/auth/register",
            json!({"username": "vic", "password": "attacker password", "email": "vic@example.com"}),
        )
        .await;
    }
    assert_eq!(s.sent_to("vic@example.com"), 1);
    // The victim's code still completes the victim's registration, with the victim's password.
    let r = s
        .post(
            "/auth/register/verify",
            json!({"username": "vic", "code": code}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(s.login("vic").await.status, StatusCode::OK);
    let r = s
        .post(
            "/auth/login",
            json!({"username": "vic", "password": "attacker password"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

/// Guessing the registration code, then registering again, bought a new code and new guesses.
#[tokio::test]
async fn registering_again_buys_no_fresh_code_guesses() {
    let s = Server::new();
    let body = json!({"username": "gus", "password": PASSWORD, "email": "gus@example.com"});
    s.post("/auth/register", body.clone()).await;
    let code = s.code_to("gus@example.com", MessagePurpose::RegistrationCode);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..Policy::default().code_max_attempts {
        let r = s
            .post(
                "/auth/register/verify",
                json!({"username": "gus", "code": wrong}),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    }
    // Past the cooldown, registering again (same address) may mail a new code, but the
    // guesses spent stay spent: neither the old nor a new code opens the account.
    s.advance(61);
    s.post("/auth/register", body).await;
    for code in [
        code,
        s.code_to("gus@example.com", MessagePurpose::RegistrationCode),
    ] {
        let r = s
            .post(
                "/auth/register/verify",
                json!({"username": "gus", "code": code}),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    }
}

/// 60 wrong passwords, then the right one, got a 200: the password step had no limit.
#[tokio::test]
async fn the_password_step_is_limited_per_account() {
    let s = Server::new();
    s.register("pia").await;
    let mut limited = 0;
    for i in 0..60 {
        // From many addresses, as a botnet would: the per-account limit holds across them.
        let ip = format!("198.51.100.{}", i % 50 + 1);
        let r = s
            .post_from(
                &ip,
                "/auth/login",
                json!({"username": "pia", "password": "wrong password"}),
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            assert_retry_after(&r, 1);
            limited += 1;
        } else {
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
    }
    assert!(limited >= 40, "only {limited} of 60 refused");
    let r = s.login("pia").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait = assert_retry_after(&r, 1);
    // An unknown name is limited alike (the answer tells nothing about who exists).
    for _ in 0..20 {
        s.post(
            "/auth/login",
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await;
    }
    let r = s
        .post(
            "/auth/login",
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Once the window has passed, the owner signs in.
    s.advance(wait.max(15 * 60));
    assert_eq!(s.login("pia").await.status, StatusCode::OK);
}

/// One address trying many accounts is held by a ceiling of its own; other addresses are not.
#[tokio::test]
async fn the_password_step_is_limited_per_client_address() {
    let s = Server::new();
    s.register("rae").await;
    let mut limited = None;
    for i in 0..40 {
        let r = s
            .post_from(
                "203.0.113.9",
                "/auth/login",
                json!({"username": format!("user{i}"), "password": "wrong password"}),
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited.get_or_insert(i);
        }
    }
    assert_eq!(
        limited,
        Some(30),
        "the 31st request of one address is refused"
    );
    let r = s
        .post_from(
            "203.0.113.9",
            "/auth/login",
            json!({"username": "rae", "password": PASSWORD}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // One IPv6 host is one /64: rotating the low bits does not escape the ceiling.
    for i in 0..31 {
        s.post_from(
            &format!("2001:db8:1:2::{i:x}"),
            "/auth/login",
            json!({"username": format!("user{i}"), "password": "wrong password"}),
        )
        .await;
    }
    let r = s
        .post_from(
            "2001:db8:1:2:ffff::1",
            "/auth/login",
            json!({"username": "rae", "password": PASSWORD}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let r = s
        .post_from(
            "203.0.113.10",
            "/auth/login",
            json!({"username": "rae", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// 100 concurrent unauthenticated logins ran 100 argon2 hashes at once (3.96 GB): the runs are
/// capped, and past the queue the answer is 503 with Retry-After.
#[tokio::test]
async fn argon2_runs_are_capped_and_a_full_queue_answers_503() {
    let s = Server::with_hash_limits(1, 0);
    s.register("hal").await;
    // Every permit busy (as under a flood), no room to wait.
    let permit = s.state.hash_gate().permit().await.unwrap();
    for r in [
        s.login("hal").await,
        s.login("nobody").await,
        s.post(
            "/auth/register",
            json!({"username": "ida", "password": PASSWORD, "email": "ida@example.com"}),
        )
        .await,
    ] {
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_retry_after(&r, 1);
    }
    assert_eq!(s.sent_to("ida@example.com"), 0);
    drop(permit);
    assert_eq!(s.login("hal").await.status, StatusCode::OK);
}

/// With room in the queue, requests wait for a permit instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn argon2_callers_wait_in_the_queue() {
    let s = Arc::new(Server::with_hash_limits(1, 8));
    s.register("ivy").await;
    let permit = s.state.hash_gate().permit().await.unwrap();
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.login("ivy").await.status })
        })
        .collect();
    tokio::task::yield_now().await;
    drop(permit);
    for w in waiting {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
}

/// `x,y@example.com` answered 202 for a taken name and 400 for a free one.
#[tokio::test]
async fn registration_answers_alike_for_an_address_the_service_refuses() {
    let s = Server::new();
    s.register("bob").await;
    for email in [
        "x,y@example.com",
        "x<y>@example.com",
        "x@.example.com",
        "é@example.com",
    ] {
        let free = s
            .post(
                "/auth/register",
                json!({"username": "carl", "password": PASSWORD, "email": email}),
            )
            .await;
        let taken = s
            .post(
                "/auth/register",
                json!({"username": "bob", "password": PASSWORD, "email": email}),
            )
            .await;
        assert_eq!(
            (free.status, &free.json),
            (taken.status, &taken.json),
            "{email}"
        );
        assert_error(&free, StatusCode::BAD_REQUEST, "invalid_input");
    }
}

/// Code `"abc"` on `/auth/register/verify` told pending names from others.
#[tokio::test]
async fn register_verify_answers_alike_for_pending_and_other_names() {
    let s = Server::new();
    s.register("bob").await;
    s.post(
        "/auth/register",
        json!({"username": "penny", "password": PASSWORD, "email": "penny@example.com"}),
    )
    .await;
    for code in ["abc", "", "12345678901234567890", "１２３４５６", "000000"] {
        let replies = [
            s.post(
                "/auth/register/verify",
                json!({"username": "penny", "code": code}),
            )
            .await,
            s.post(
                "/auth/register/verify",
                json!({"username": "bob", "code": code}),
            )
            .await,
            s.post(
                "/auth/register/verify",
                json!({"username": "nemo", "code": code}),
            )
            .await,
            s.post(
                "/auth/register/verify",
                json!({"username": "x", "code": code}),
            )
            .await,
        ];
        for r in &replies {
            assert_error(r, StatusCode::UNAUTHORIZED, "invalid_code");
            assert_eq!(r.json, replies[0].json, "{code:?}");
        }
    }
}

/// A mailer that holds every message until released.
struct Gated {
    open: Arc<tokio::sync::Semaphore>,
    inner: RecordingMailer,
}

#[async_trait]
impl Mailer for Gated {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let _pass = self.open.acquire().await;
        self.inner.send(message).await
    }
}

/// An SMTP send only for free names was a timing oracle: the answer now comes before any mail.
#[tokio::test]
async fn registration_answers_before_any_mail_is_sent() {
    let recording = RecordingMailer::new();
    let open = Arc::new(tokio::sync::Semaphore::new(0));
    let gated = Gated {
        open: Arc::clone(&open),
        inner: recording.clone(),
    };
    let s = Server::with_mailer(Arc::new(gated), recording);
    let req = Request::post("/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": "tess", "password": PASSWORD, "email": "tess@example.com"})
                .to_string(),
        ))
        .unwrap();
    // The mailer is held shut: a handler that waited for it would never answer.
    let r = tokio::time::timeout(Duration::from_secs(30), s.raw_now(req))
        .await
        .expect("the answer does not wait for the mail");
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(s.sent_to("tess@example.com"), 0);
    open.add_permits(1);
    s.state.mail_settled().await;
    assert_eq!(s.sent_to("tess@example.com"), 1);
}

/// An access token still worked after logout.
#[tokio::test]
async fn logout_ends_the_access_token_at_once() {
    let s = Server::new();
    let uma = s.register("uma").await;
    assert_eq!(
        s.get_auth("/auth/me", &uma.access).await.status,
        StatusCode::OK
    );
    // As the page does: the refresh token in the body.
    let r = s
        .post("/auth/logout", json!({"refresh_token": uma.refresh}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.get_auth("/auth/me", &uma.access).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // With only the access token, the session ends too, refresh token included.
    let r = s.login("uma").await;
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    let r = s.post_auth("/auth/logout", &access, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.get_auth("/auth/me", &access).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = s
        .post("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    // Other sessions of the same user are not ended.
    let other = s.login("uma").await;
    let other = other.json["access_token"].as_str().unwrap().to_owned();
    let third = s.login("uma").await;
    let third = third.json["access_token"].as_str().unwrap().to_owned();
    s.post_auth("/auth/logout", &third, json!({})).await;
    assert_eq!(s.get_auth("/auth/me", &other).await.status, StatusCode::OK);
}

/// Reusing a spent refresh token was refused, but the tokens that replaced it kept working.
#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let s = Server::new();
    let val = s.register("val").await;
    let r = s
        .post("/auth/refresh", json!({"refresh_token": val.refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access2 = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.json["refresh_token"].as_str().unwrap().to_owned();
    let r = s
        .post("/auth/refresh", json!({"refresh_token": refresh2}))
        .await;
    let access3 = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh3 = r.json["refresh_token"].as_str().unwrap().to_owned();
    // The first token, spent two rotations ago, comes back: a thief or the user has a copy.
    let r = s
        .post("/auth/refresh", json!({"refresh_token": val.refresh}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    // Every token of that sign-in is void now.
    for access in [&val.access, &access2, &access3] {
        let r = s.get_auth("/auth/me", access).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for refresh in [&refresh2, &refresh3] {
        let r = s
            .post("/auth/refresh", json!({"refresh_token": refresh}))
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // Another sign-in of the same user is its own family.
    assert_eq!(s.login("val").await.status, StatusCode::OK);
}

/// Access tokens are standard HS256 JWTs naming a session, refresh tokens are opaque.
#[tokio::test]
async fn access_tokens_are_jwts_naming_a_session() {
    let s = Server::new();
    let wes = s.register("wes").await;
    let parts: Vec<&str> = wes.access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    assert!(claims["sid"].as_str().is_some_and(|s| s.len() >= 20));
    assert_eq!(claims["exp"].as_u64(), Some(START + 15 * 60));
    assert!(wes.refresh.starts_with("rt1_"));
    // `alg: none` with the same claims is refused.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let r = s.get_auth("/auth/me", &none).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The code step runs with the client's address (`verify_login_with`): one address guessing
/// codes across many accounts meets the crate's per-client ceiling (60 login steps per 15 min)
/// before any account's own lock, whichever step comes 61st (here a sign-in: 10 accounts × 6
/// steps).
#[tokio::test]
async fn the_code_step_holds_the_per_client_ceiling_across_accounts() {
    let s = Server::new();
    let ceiling = Policy::default().client_login_limit.max();
    let mut steps = 0;
    let mut refused = None;
    'users: for i in 0..12 {
        let name = format!("cody{i}");
        let account = s.register(&name).await;
        s.enrol_totp(&account).await;
        let r = s
            .post_from(
                "192.0.2.44",
                "/auth/login",
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
        steps += 1;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((steps, r));
            break;
        }
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let challenge = r.json["challenge"].as_str().unwrap().to_owned();
        for _ in 0..Policy::default().challenge_max_attempts {
            let r = s
                .post_from(
                    "192.0.2.44",
                    "/auth/login/two-factor",
                    json!({"challenge": challenge, "code": "000000"}),
                )
                .await;
            steps += 1;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                refused = Some((steps, r));
                break 'users;
            }
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
        }
    }
    let (at, r) = refused.expect("the ceiling is reached");
    assert_eq!(at, u64::from(ceiling) + 1);
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_retry_after(&r, 1);
}

// ---- security keys and passkeys ----------------------------------------------------------------

#[tokio::test]
async fn a_security_key_registers_signs_in_and_is_removed() {
    let s = Server::new();
    let mut kim = s.register("kim").await;
    s.enrol_totp(&kim).await;

    // The options for navigator.credentials.create, for the page's origin; the display name is
    // the username unless the page gives one.
    let r = s
        .call(
            "POST",
            "/auth/2fa/security-keys/register/start",
            Some(&kim.access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let options = &r.json["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["rp"]["name"], "twofactor demo");
    assert_eq!(options["user"]["name"], "kim");
    // A touch is enough (the default), and nothing asks for a protection policy that
    // Chromium would refuse beside it.
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "discouraged"
    );
    assert!(options["extensions"]["credentialProtectionPolicy"].is_null());
    assert!(options["challenge"].is_string());
    let mut key = SoftKey::new();
    let response = key.create_at(SITE, &r.json).await.unwrap();
    // The credential as a string works as well as the object.
    let r = s
        .post_auth(
            "/auth/2fa/security-keys/register/finish",
            &kim.access,
            json!({"response": response, "label": " YubiKey 5C "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sk_"), "{id}");
    assert_eq!(r.json["label"], "YubiKey 5C");
    assert_eq!(r.json["created_at"], START + 30);
    assert_eq!(r.json["last_used_at"], Value::Null);
    assert!(r.json.get("credential").is_none());

    let keys = s.keys(&kim).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    let st = s.get_auth("/auth/2fa/status", &kim.access).await;
    assert_eq!(st.json["security_keys"], 1);
    assert_eq!(
        st.json["methods"],
        json!(["totp", "security_key", "backup_code"])
    );

    // Sign out, then in: the challenge offers the key with the request options.
    let r = s
        .post_auth(
            "/auth/logout",
            &kim.access,
            json!({"refresh_token": kim.refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.advance(60);
    let r = s.login("kim").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.json["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("security_key")));
    let options = r.json["security_key"].clone();
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();

    // Signed at another origin (a phishing page): refused like a wrong code.
    let phished: Value =
        serde_json::from_str(&key.get_at("http://localhost:9999", &options).await.unwrap())
            .unwrap();
    let r = s
        .post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "assertion": phished}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // Signed at the page's origin: tokens.
    let assertion: Value =
        serde_json::from_str(&key.get_at(SITE, &options).await.unwrap()).unwrap();
    let r = s
        .post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "assertion": assertion}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "security_key");
    assert_eq!(r.json["backup_codes_remaining"], 10);
    kim.access = r.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get_auth("/auth/me", &kim.access).await.json["username"],
        "kim"
    );
    assert_eq!(s.keys(&kim).await[0]["last_used_at"], START + 90);
    // The challenge is spent: the same assertion again is refused.
    let r = s
        .post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "assertion": assertion}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // Removal: the password and a step-up assertion (of the key itself).
    let code = s.key_step_up(&kim, &mut key).await;
    let r = s
        .call(
            "DELETE",
            &format!("/auth/2fa/security-keys/{id}"),
            Some(&kim.access),
            Some(json!({"password": PASSWORD, "code": code})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["security_keys"], 0);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["methods"], json!(["totp", "backup_code"]));
    assert!(s.keys(&kim).await.is_empty());
    // No key on offer any more.
    let r = s.login("kim").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.json.get("security_key").is_none(), "{}", r.text);
    assert_eq!(r.json["methods"], json!(["totp", "backup_code"]));
}

#[tokio::test]
async fn the_login_step_takes_the_assertion_in_the_code_field_too() {
    let s = Server::new();
    let lea = s.register("lea").await;
    s.enrol_totp(&lea).await;
    let mut key = SoftKey::new();
    s.enrol_key(&lea, &mut key, "Key").await;

    let r = s.login("lea").await;
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();
    let assertion = key.get_at(SITE, &r.json["security_key"]).await.unwrap();
    // Both, or neither: not a request the step takes.
    let r = s
        .post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "code": "123456", "assertion": {}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .post("/auth/login/two-factor", json!({"challenge": challenge}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .post(
            "/auth/login/two-factor",
            json!({"challenge": challenge, "assertion": "not an object"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    // A JSON string in `code`, as a client that passes the text through sends it.
    let r = s.answer(&challenge, &assertion).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "security_key");
}

#[tokio::test]
async fn security_key_endpoints_refuse_what_the_crate_refuses() {
    let s = Server::new();
    let max = s.register("max").await;
    let mut key = SoftKey::new();

    // A key is added beside a code factor only.
    let r = s
        .call(
            "POST",
            "/auth/2fa/security-keys/register/start",
            Some(&max.access),
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "fallback_factor_required");
    let r = s
        .call(
            "POST",
            "/auth/2fa/security-keys/step-up/start",
            Some(&max.access),
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_enrolled");

    let (secret, _) = s.enrol_totp(&max).await;
    // Finishing what was not started.
    let r = s
        .post_auth(
            "/auth/2fa/security-keys/register/finish",
            &max.access,
            json!({"response": {"id": "x"}, "label": "Key"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    // Not JSON the endpoint takes.
    let r = s
        .post_auth(
            "/auth/2fa/security-keys/register/finish",
            &max.access,
            json!({"response": 5, "label": "Key"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    // A credential made for another origin.
    let r = s
        .post_auth(
            "/auth/2fa/security-keys/register/start",
            &max.access,
            json!({"display_name": "Max Mustermann"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["publicKey"]["user"]["displayName"], "Max Mustermann");
    let elsewhere = key
        .create_at("http://localhost:9999", &r.json)
        .await
        .unwrap();
    let r = s
        .post_auth(
            "/auth/2fa/security-keys/register/finish",
            &max.access,
            json!({"response": elsewhere, "label": "Key"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "security_key_rejected");
    assert!(s.keys(&max).await.is_empty());

    let mut key = SoftKey::new();
    let id = s.enrol_key(&max, &mut key, "Old name").await;
    // Rename.
    let uri = format!("/auth/2fa/security-keys/{id}");
    let r = s
        .call(
            "PATCH",
            &uri,
            Some(&max.access),
            Some(json!({"label": "Blue key"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["label"], "Blue key");
    assert_eq!(s.keys(&max).await[0]["label"], "Blue key");
    let r = s
        .call(
            "PATCH",
            &uri,
            Some(&max.access),
            Some(json!({"label": " "})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .call(
            "PATCH",
            "/auth/2fa/security-keys/sk_nope",
            Some(&max.access),
            Some(json!({"label": "x"})),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Removal: an unknown key, a wrong password, a wrong code, a missing code.
    let right = s.totp(&secret, 0);
    let r = s
        .call(
            "DELETE",
            "/auth/2fa/security-keys/sk_nope",
            Some(&max.access),
            Some(json!({"password": PASSWORD, "code": right})),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s
        .call(
            "DELETE",
            &uri,
            Some(&max.access),
            Some(json!({"password": "wrong password", "code": right})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_password");
    let wrong = crate::support::wrong(&right);
    let r = s
        .call(
            "DELETE",
            &uri,
            Some(&max.access),
            Some(json!({"password": PASSWORD, "code": wrong})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = s
        .call(
            "DELETE",
            &uri,
            Some(&max.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    // An assertion signed at another origin is no step-up.
    let r = s
        .call(
            "POST",
            "/auth/2fa/security-keys/step-up/start",
            Some(&max.access),
            None,
        )
        .await;
    let phished: Value =
        serde_json::from_str(&key.get_at("http://localhost:9999", &r.json).await.unwrap()).unwrap();
    let r = s
        .call(
            "DELETE",
            &uri,
            Some(&max.access),
            Some(json!({"password": PASSWORD, "code": phished})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert_eq!(s.keys(&max).await.len(), 1);
}

#[tokio::test]
async fn adding_a_key_later_needs_a_recent_check_which_a_key_can_give() {
    let s = Server::new();
    let ned = s.register("ned").await;
    let (secret, _) = s.enrol_totp(&ned).await;
    let mut key = SoftKey::new();
    s.enrol_key(&ned, &mut key, "First").await;

    // Past the policy's reauth window (5 minutes), a session alone adds nothing.
    s.advance(400);
    let r = s
        .call(
            "POST",
            "/auth/2fa/security-keys/register/start",
            Some(&ned.access),
            None,
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "reauth_required");
    let r = s
        .post_auth("/auth/2fa/email/setup", &ned.access, json!({}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "reauth_required");

    // A wrong code opens nothing; the key's assertion does.
    let right = s.totp(&secret, 0);
    let wrong = crate::support::wrong(&right);
    let r = s
        .post_auth(
            "/auth/2fa/reauthenticate",
            &ned.access,
            json!({"code": wrong}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let assertion = s.key_step_up(&ned, &mut key).await;
    let r = s
        .post_auth(
            "/auth/2fa/reauthenticate",
            &ned.access,
            json!({"code": assertion}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "security_key");
    let mut second = SoftKey::new();
    s.enrol_key(&ned, &mut second, "Second").await;
    let labels: Vec<Value> = s
        .keys(&ned)
        .await
        .iter()
        .map(|k| k["label"].clone())
        .collect();
    assert_eq!(labels, vec![json!("First"), json!("Second")]);

    // Later again: a TOTP code opens the window as well.
    s.advance(400);
    let r = s
        .post_auth(
            "/auth/2fa/reauthenticate",
            &ned.access,
            json!({"code": s.totp(&secret, 0)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "totp");
}

#[tokio::test]
async fn a_key_assertion_regenerates_backup_codes_and_turns_two_factor_off() {
    let s = Server::new();
    let ola = s.register("ola").await;
    let (_, old) = s.enrol_totp(&ola).await;
    let mut key = SoftKey::new();
    s.enrol_key(&ola, &mut key, "Key").await;

    let assertion = s.key_step_up(&ola, &mut key).await;
    let r = s
        .post_auth(
            "/auth/2fa/backup-codes/regenerate",
            &ola.access,
            json!({"code": assertion}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let fresh = r.json["backup_codes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(!fresh.contains(&json!(old[0])));
    // One step-up, one use.
    let r = s
        .post_auth(
            "/auth/2fa/backup-codes/regenerate",
            &ola.access,
            json!({"code": assertion}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    let assertion = s.key_step_up(&ola, &mut key).await;
    let r = s
        .post_auth(
            "/auth/2fa/disable",
            &ola.access,
            json!({"password": PASSWORD, "code": assertion}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], false);
    assert_eq!(r.json["security_keys"], 0);
    assert!(s.keys(&ola).await.is_empty());
    assert_eq!(s.login("ola").await.status, StatusCode::OK);
}
