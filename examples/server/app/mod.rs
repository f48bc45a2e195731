//! The server example's application: state, routes and handlers.
//!
//! `main.rs` reads the environment and serves this router; the HTTP tests (`tests/http`) include
//! this module with `#[path]` and drive the same router in process.

mod background;
mod hashing;
mod security_keys;
mod sessions;
mod users;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use twofactor::{
    clock::Clock, clock::Timestamp, mail::Mailer, rate_limit::Limit, rate_limit::RateLimiter,
    store::EnrollmentStore, store::OtpStore, ChallengeToken, Keyring, LoginContext, LoginStep,
    Method, Policy, TwoFactorService,
};

pub(crate) use background::Background;
pub(crate) use hashing::{HashGate, HashLimits};
pub(crate) use security_keys::security_key_policy;
pub(crate) use sessions::Sessions;
use users::{normalize_username, Users};

/// The issuer shown in authenticator apps and mail.
const ISSUER: &str = "twofactor demo";
/// The largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024;
/// Password checks per account (the normalised username, known or not), from any address.
const PASSWORD_PER_ACCOUNT: Limit = Limit::sliding(20, Duration::from_secs(15 * 60));
/// Requests carrying a password (sign-in, registration) per client address, across accounts.
const PASSWORD_PER_CLIENT: Limit = Limit::sliding(30, Duration::from_secs(15 * 60));
/// Registration mails per address.
const MAILS_PER_ADDRESS: Limit = Limit::fixed(3, Duration::from_secs(3600));

/// What the application runs on.
pub(crate) struct Backends {
    /// The master key of the two-factor service.
    pub(crate) keys: Keyring,
    /// Short-lived state: codes, challenges, counters.
    pub(crate) otp_store: Arc<dyn OtpStore>,
    /// Durable factors.
    pub(crate) enrollments: Arc<dyn EnrollmentStore>,
    /// Where codes and notifications go.
    pub(crate) mailer: Arc<dyn Mailer>,
    /// The clock of the service and of the session tokens.
    pub(crate) clock: Arc<dyn Clock>,
    /// The numbers of the flows.
    pub(crate) policy: Policy,
    /// The sessions and their tokens.
    pub(crate) sessions: Sessions,
    /// How many argon2 runs at once, and how many waiting.
    pub(crate) hash_limits: HashLimits,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    tf: TwoFactorService,
    users: Arc<Users>,
    sessions: Arc<Sessions>,
    clock: Arc<dyn Clock>,
    hashes: Arc<HashGate>,
    limits: Arc<Limiters>,
    background: Arc<Background>,
}

/// The example's own limits, kept in the service's short-lived store (so shared by every
/// instance on Redis or SQL). The crate limits the code step itself: per challenge and per user,
/// and per client with [`LoginContext`].
struct Limiters {
    /// Password checks per account.
    password: RateLimiter,
    /// Requests carrying a password per client address.
    client: RateLimiter,
    /// Registration mails per address.
    address: RateLimiter,
}

/// A clock shared between the service and the token code.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

/// The service's password check (for `disable`): argon2 runs on the blocking pool, never on the
/// async executor. The route holds an argon2 permit meanwhile (see [`HashGate`]).
struct UserPasswords(Arc<Users>);

#[twofactor::async_trait]
impl twofactor::service::PasswordVerifier for UserPasswords {
    async fn verify(&self, user: &str, password: &str) -> Result<bool, twofactor::error::BoxError> {
        let (users, user, password) = (Arc::clone(&self.0), user.to_owned(), password.to_owned());
        Ok(tokio::task::spawn_blocking(move || users.check_password(&user, &password)).await?)
    }
}

impl AppState {
    /// Builds the two-factor service and the demo user store over `backends`.
    ///
    /// # Errors
    /// When the service configuration is refused.
    pub(crate) fn new(backends: Backends) -> Result<Self, twofactor::Error> {
        let users = Arc::new(Users::new()?);
        let (for_password, for_names) = (Arc::clone(&users), Arc::clone(&users));
        let tf = TwoFactorService::builder()
            .issuer(ISSUER)
            .keys(backends.keys)
            .otp_store(backends.otp_store)
            .enrollments(backends.enrollments)
            .mailer(backends.mailer)
            .policy(backends.policy)
            .clock(SharedClock(Arc::clone(&backends.clock)))
            .password_verifier(UserPasswords(for_password))
            .display_names(move |user: &str| for_names.get(user).map(|u| u.username))
            .build()?;
        let limits = Limiters {
            password: tf.rate_limiter("password per account", PASSWORD_PER_ACCOUNT)?,
            client: tf.rate_limiter("password per client", PASSWORD_PER_CLIENT)?,
            address: tf.rate_limiter("registration mail per address", MAILS_PER_ADDRESS)?,
        };
        Ok(AppState {
            tf,
            users,
            sessions: Arc::new(backends.sessions),
            clock: backends.clock,
            hashes: Arc::new(HashGate::new(backends.hash_limits)),
            limits: Arc::new(limits),
            background: Arc::new(Background::default()),
        })
    }

    /// The argon2 gate (tests hold its permits to fill it).
    #[allow(dead_code)] // used by the HTTP tests (tests/http)
    pub(crate) fn hash_gate(&self) -> &HashGate {
        &self.hashes
    }

    /// Waits until every mail sent in the background has been handed to the mailer.
    pub(crate) async fn mail_settled(&self) {
        self.background.settled().await;
    }

    /// Counts one password-bearing request against its client's limit.
    async fn limit_client(&self, client: &Client) -> ApiResult<()> {
        match &client.0 {
            Some(ip) => self.limits.client.hit(ip).await.map_err(too_many),
            None => Ok(()),
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn policy(&self) -> &Policy {
        self.tf.policy()
    }
}

/// The whole application: the page, its assets and the JSON API.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/style.css", get(stylesheet))
        .route("/auth/register", post(register))
        .route("/auth/register/verify", post(register_verify))
        .route("/auth/login", post(login))
        .route("/auth/login/two-factor", post(login_two_factor))
        .route("/auth/login/resend", post(login_resend))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/2fa/status", get(status))
        .route("/auth/2fa/totp/setup", post(totp_setup))
        .route("/auth/2fa/totp/enable", post(totp_enable))
        .route("/auth/2fa/email/setup", post(email_setup))
        .route("/auth/2fa/email/confirm", post(email_confirm))
        .route("/auth/2fa/step-up", post(step_up))
        .route("/auth/2fa/disable", post(disable))
        .route("/auth/2fa/backup-codes/regenerate", post(regenerate))
        .route("/auth/2fa/reauthenticate", post(reauthenticate))
        .route("/auth/2fa/security-keys", get(security_keys::list))
        .route(
            "/auth/2fa/security-keys/register/start",
            post(security_keys::register_start),
        )
        .route(
            "/auth/2fa/security-keys/register/finish",
            post(security_keys::register_finish),
        )
        .route(
            "/auth/2fa/security-keys/step-up/start",
            post(security_keys::step_up_start),
        )
        .route(
            "/auth/2fa/security-keys/{id}",
            patch(security_keys::rename).delete(security_keys::remove),
        )
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Errors: `{"error": code, "message": text}`, the status the crate suggests, and Retry-After.

/// An error answer of the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    retry_after: Option<Duration>,
}

impl ApiError {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        ApiError {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// No access token, or not a valid one.
    const UNAUTHORIZED: ApiError =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Please sign in.");
    /// Wrong username or password, and unknown usernames alike.
    const INVALID_CREDENTIALS: ApiError = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "The username or password is not correct.",
    );
    /// A refresh token that is not live.
    const INVALID_TOKEN: ApiError = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "Your session has ended. Please sign in again.",
    );
    /// Something failed inside the server; details are in its log.
    const INTERNAL: ApiError = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "An internal error occurred.",
    );
    /// Every argon2 permit is taken and the queue is full.
    const BUSY: ApiError = ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "busy",
        message: "The server is busy. Please try again in a moment.",
        retry_after: Some(hashing::BUSY_RETRY_AFTER),
    };
    /// A body that is not the JSON the endpoint takes.
    const BAD_REQUEST: ApiError = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "The request is not valid.",
    );

    fn invalid_input(message: &'static str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// The answer for a failed code step, whatever failed (ASVS 5.0 6.3.8).
    fn invalid_code() -> Self {
        twofactor::Error::InvalidCode {
            attempts_remaining: None,
        }
        .into()
    }
}

impl From<twofactor::Error> for ApiError {
    fn from(e: twofactor::Error) -> Self {
        if e.http_status() >= 500 {
            // The error's text and source chain carry no secret.
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "two-factor service failed");
        }
        // Every failure of the code step answers the same code and status, so a response never
        // tells an attacker whether the code, its format or the challenge was wrong.
        let code = e.public_code();
        let status = StatusCode::from_u16(e.public_http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code != e.code() {
            tracing::info!(error = e.code(), "code step refused");
        }
        ApiError {
            status,
            code,
            message: e.public_message(),
            retry_after: e.retry_after(),
        }
    }
}

impl From<hashing::Busy> for ApiError {
    fn from(_: hashing::Busy) -> Self {
        ApiError::BUSY
    }
}

/// A refusal of one of the limiters (the example's or the crate's per-client ceiling) as a 429
/// that speaks of attempts, not of codes; other errors as usual.
fn too_many(e: twofactor::Error) -> ApiError {
    match e {
        twofactor::Error::RateLimited { retry_after } => ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: "Too many attempts. Please wait before trying again.",
            retry_after: Some(retry_after),
        },
        e => e.into(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "The request is too large.",
            )
        } else {
            ApiError::BAD_REQUEST
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        // Whole seconds, rounded up, at least 1: a client that waits that long is not early.
        let retry = self
            .retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1));
        if let (Some(secs), Some(obj)) = (retry, body.as_object_mut()) {
            obj.insert("retry_after".into(), secs.into());
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == "unauthorized" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejection is our 400 answer instead of axum's plain-text one.
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

/// The signed-in user, from `Authorization: Bearer <access token>`.
struct Auth(users::User);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer(parts).ok_or(ApiError::UNAUTHORIZED)?;
        let id = state
            .sessions
            .verify_access(token, state.now())
            .ok_or(ApiError::UNAUTHORIZED)?;
        state.users.get(&id).map(Auth).ok_or(ApiError::UNAUTHORIZED)
    }
}

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's address, as the key of its limits: the peer of the connection (for IPv6, its
/// /64, which one host usually holds whole). `None` when the server runs without connection info
/// (the in-process tests that do not set it).
///
/// Behind a reverse proxy the peer is the proxy: take the address from the header that proxy
/// sets (and only from it), or every client shares one limit.
struct Client(Option<String>);

impl Client {
    fn context(&self) -> LoginContext {
        match &self.0 {
            Some(ip) => LoginContext::new().client(ip.clone()),
            None => LoginContext::new(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Client(peer.map(|ConnectInfo(addr)| client_key(addr.ip()))))
    }
}

fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

async fn index() -> Html<&'static str> {
    Html(include_str!("assets/index.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "There is nothing here.")
}

/// Headers on every answer: no caching of API answers (they carry tokens, secrets and codes),
/// and a strict content security policy for the page (no inline script or style).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let json = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Registration.

#[derive(Deserialize)]
struct RegisterRequest {
    username: String,
    password: String,
    email: String,
}

/// `POST /auth/register`: answers 202 whether or not the username is free, so the answer never
/// tells who has an account. It answers before any mail is sent: the code goes out in the
/// background, so neither the time of the answer nor a mail failure tells a free name from a
/// taken one. Only a free name gets a pending registration and a code; a pending name is never
/// replaced (see `Users::register`), and each address gets a few mails an hour at most.
async fn register(
    State(s): State<AppState>,
    client: Client,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let username = normalize_username(&req.username).ok_or(ApiError::invalid_input(
        "Choose a username of 3 to 32 letters, digits, dots, dashes or underscores.",
    ))?;
    if !users::password_acceptable(&req.password) {
        return Err(ApiError::invalid_input(
            "Choose a password of 8 to 256 characters.",
        ));
    }
    let email = req.email.trim().to_owned();
    if !plausible_email(&email) {
        return Err(ApiError::invalid_input("Enter a valid email address."));
    }
    s.limit_client(&client).await?;
    // argon2id is deliberately slow and large: off the async workers, and a few at a time.
    let password = req.password;
    let hash = s
        .hashes
        .run(move || twofactor::account::hash_password(&password))
        .await?
        .ok_or(ApiError::INTERNAL)??;
    if let Some(id) = s.users.register(&username, &email, hash, s.now()) {
        let (tf, address_limit) = (s.tf.clone(), s.limits.address.clone());
        s.background.spawn(async move {
            send_registration_code(&tf, &address_limit, &id, &email).await;
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "verification_sent",
            "code_expires_in": s.policy().email_code_ttl.as_secs(),
        })),
    ))
}

/// Mails a registration code, within the address's budget; failures are logged, never answered.
async fn send_registration_code(
    tf: &TwoFactorService,
    address_limit: &RateLimiter,
    id: &str,
    email: &str,
) {
    match address_limit.hit(&email.to_ascii_lowercase()).await {
        Ok(()) => {}
        Err(e) => {
            tracing::info!(
                error = e.code(),
                "registration mail not sent: address limit"
            );
            return;
        }
    }
    if let Err(e) = tf.email().send_verification_code(id, email).await {
        tracing::warn!(error = e.code(), "registration mail not sent");
    }
}

/// The address rules of the crate (`send_verification_code` refuses anything else), checked
/// before anything else so that a bad address is refused alike for free and taken names.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && email.is_ascii()
        && !email
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        && !email.contains(['<', '>', '"', ',', ';'])
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
}

#[derive(Deserialize)]
struct VerifyRequest {
    username: String,
    code: String,
}

/// `POST /auth/register/verify`: the emailed code turns the registration into an account and
/// signs the user in. Whatever fails (no such pending name, a taken name, a wrong, malformed,
/// expired or spent code) answers the same `invalid_code`, after the same work: a name with no
/// pending registration has its code checked against an id nobody has.
async fn register_verify(
    State(s): State<AppState>,
    Body(req): Body<VerifyRequest>,
) -> ApiResult<impl IntoResponse> {
    let username = normalize_username(&req.username);
    let pending = username
        .as_deref()
        .and_then(|name| s.users.pending_id(name, s.now()));
    let id = pending.as_deref().unwrap_or(s.users.decoy_id());
    let checked = s.tf.email().verify_registration_code(id, &req.code).await;
    let (Some(username), Some(id)) = (username, pending) else {
        return Err(ApiError::invalid_code());
    };
    match checked {
        Ok(_address) => {}
        // A store outage is not a wrong code; say so (it tells nothing about the name).
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(_) => return Err(ApiError::invalid_code()),
    }
    let user = s
        .users
        .activate(&username, &id)
        .ok_or_else(ApiError::invalid_code)?;
    Ok((
        StatusCode::CREATED,
        Json(tokens_json(&s, &user.id, json!({}))),
    ))
}

// ---------------------------------------------------------------------------------------------
// Login.

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /auth/login`: 200 with tokens when the user has no second factor, 202 with a challenge
/// when they have one. Unknown user and wrong password answer alike, after the same argon2 work.
///
/// Before any argon2 run, the request is counted per client address and per account (429 with
/// Retry-After past either); every check counts, a right password too, so no success forgives
/// earlier failures. A full argon2 queue answers 503 with Retry-After.
async fn login(
    State(s): State<AppState>,
    client: Client,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let username = normalize_username(&req.username).unwrap_or_default();
    s.limit_client(&client).await?;
    s.limits.password.hit(&username).await.map_err(too_many)?;
    let users = Arc::clone(&s.users);
    let user = s
        .hashes
        .run(move || users.authenticate(&username, &req.password))
        .await?
        .ok_or(ApiError::INTERNAL)?
        .ok_or(ApiError::INVALID_CREDENTIALS)?;
    let step = s.tf.begin_login(&client.context(), &user.id).await;
    match step.map_err(too_many)? {
        LoginStep::Complete(_) => Ok(Json(tokens_json(&s, &user.id, json!({}))).into_response()),
        LoginStep::Challenge(ch) => {
            let methods: Vec<&str> = ch.methods().iter().map(|m| m.as_str()).collect();
            let mut body = json!({
                "two_fa_required": true,
                "challenge": ch.token().as_str(),
                "methods": methods,
                "expires_in": ch.expires_at().duration_since(s.now()).as_secs(),
                "email_sent": ch.email_sent(),
            });
            // The options for `navigator.credentials.get`, when a security key is on offer.
            if let (Some(options), Some(obj)) = (ch.security_key(), body.as_object_mut()) {
                obj.insert("security_key".into(), options.as_json().clone());
            }
            if methods.contains(&"email") {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("email_hint".into(), mask_email(&user.email).into());
                    // The code lives no longer than its challenge.
                    let ttl = s.policy().email_code_ttl.min(s.policy().challenge_ttl);
                    obj.insert("code_expires_in".into(), ttl.as_secs().into());
                    obj.insert(
                        "resend_after".into(),
                        s.policy().resend_cooldown.as_secs().into(),
                    );
                }
            }
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

/// `a••••@example.com`: enough for the user to know where to look.
fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}••••@{domain}")
        }
        None => "your address".to_owned(),
    }
}

/// Where a code goes, a security key's assertion may go instead: the `PublicKeyCredential` of
/// `navigator.credentials.get`, as the JSON object `toJSON()` makes or as a string holding it.
#[derive(Deserialize)]
#[serde(untagged)]
enum CodeOrAssertion {
    Text(String),
    Json(serde_json::Map<String, Value>),
}

impl CodeOrAssertion {
    /// The input for the service: the code, or the assertion's JSON (which starts with `{`).
    fn into_input(self) -> String {
        match self {
            CodeOrAssertion::Text(text) => text,
            CodeOrAssertion::Json(object) => Value::Object(object).to_string(),
        }
    }
}

#[derive(Deserialize)]
struct CodeStepRequest {
    challenge: String,
    code: Option<CodeOrAssertion>,
    assertion: Option<serde_json::Map<String, Value>>,
}

/// `POST /auth/login/two-factor`: a TOTP code, the emailed code or a backup code (`code`), or a
/// security key's assertion (`assertion`) → tokens.
async fn login_two_factor(
    State(s): State<AppState>,
    client: Client,
    Body(req): Body<CodeStepRequest>,
) -> ApiResult<Json<Value>> {
    let input = match (req.code, req.assertion) {
        (Some(code), None) => code.into_input(),
        (None, Some(assertion)) => Value::Object(assertion).to_string(),
        _ => {
            return Err(ApiError::invalid_input(
                "Send either a code or a security key's assertion.",
            ))
        }
    };
    let token = ChallengeToken::parse(&req.challenge)?;
    let verified =
        s.tf.verify_login(&client.context(), &token, &input)
            .await
            .map_err(too_many)?;
    s.users
        .get(verified.user())
        .ok_or(ApiError::INVALID_TOKEN)?;
    Ok(Json(tokens_json(
        &s,
        verified.user(),
        json!({
            "method": verified.method().map(Method::as_str),
            "backup_codes_remaining": verified.backup_codes_remaining(),
        }),
    )))
}

#[derive(Deserialize)]
struct ResendRequest {
    challenge: String,
}

/// `POST /auth/login/resend`: a new email code for the challenge, or 429 with Retry-After.
async fn login_resend(
    State(s): State<AppState>,
    Body(req): Body<ResendRequest>,
) -> ApiResult<impl IntoResponse> {
    let token = ChallengeToken::parse(&req.challenge)?;
    s.tf.resend_code(&token).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "sent",
            "resend_after": s.policy().resend_cooldown.as_secs(),
            "code_expires_in": s.policy().email_code_ttl.as_secs(),
        })),
    ))
}

// ---------------------------------------------------------------------------------------------
// Session tokens.

/// A new token pair for `user`, as the token answer with `extra` fields.
fn tokens_json(s: &AppState, user: &str, extra: Value) -> Value {
    pair_json(s.sessions.issue(user, s.now()), extra)
}

/// The token answer: `{access_token, refresh_token, token_type, expires_in, ...extra}`.
fn pair_json(pair: sessions::TokenPair, extra: Value) -> Value {
    let mut body = json!({
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    });
    if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    body
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST /auth/refresh`: spends the refresh token for a new pair of the same session (rotation).
/// A spent token presented again ends the session: every token of its family stops working.
async fn refresh(
    State(s): State<AppState>,
    Body(req): Body<RefreshRequest>,
) -> ApiResult<Json<Value>> {
    let pair = s
        .sessions
        .refresh(&req.refresh_token, s.now())
        .ok_or(ApiError::INVALID_TOKEN)?;
    Ok(Json(pair_json(pair, json!({}))))
}

#[derive(Deserialize)]
struct LogoutRequest {
    refresh_token: Option<String>,
}

/// Logout names its session by the access token (`Authorization: Bearer`), the refresh token
/// in the body, or both.
struct Logout {
    access: Option<String>,
    refresh: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for Logout {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let access = bearer(&parts).map(str::to_owned);
        let has_body = parts.headers.contains_key(header::CONTENT_TYPE);
        let refresh = if has_body {
            let req = Request::from_parts(parts, body);
            let Body(LogoutRequest { refresh_token }) = Body::from_request(req, state).await?;
            refresh_token
        } else {
            None
        };
        if access.is_none() && refresh.is_none() {
            return Err(ApiError::invalid_input(
                "Send the access token or the refresh token of the session to end.",
            ));
        }
        Ok(Logout { access, refresh })
    }
}

/// `POST /auth/logout`: ends the session on the server, so its access token stops working at
/// once and its refresh tokens are void. 204 whether or not the session was live.
async fn logout(State(s): State<AppState>, req: Logout) -> StatusCode {
    s.sessions
        .revoke(req.access.as_deref(), req.refresh.as_deref(), s.now());
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// The signed-in user's two-factor settings.

/// `GET /auth/me`.
async fn me(Auth(user): Auth) -> Json<Value> {
    Json(json!({ "id": user.id, "username": user.username, "email": user.email }))
}

async fn status_json(s: &AppState, user: &str) -> ApiResult<Value> {
    let st = s.tf.account().status(user).await?;
    let methods: Vec<&str> = st.methods.iter().map(|m| m.as_str()).collect();
    Ok(json!({
        "enabled": st.enabled,
        "methods": methods,
        "totp_confirmed_at": st.totp_confirmed_at.map(Timestamp::as_unix_secs),
        "totp_pending": st.totp_pending,
        "email": st.email,
        "last_verified_at": st.last_verified_at.map(Timestamp::as_unix_secs),
        "backup_codes_remaining": st.backup_codes_remaining,
        "security_keys": st.security_keys,
    }))
}

/// `GET /auth/2fa/status`.
async fn status(State(s): State<AppState>, Auth(user): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(status_json(&s, &user.id).await?))
}

/// `POST /auth/2fa/totp/setup`: a new secret (pending until confirmed), as text, otpauth URI, QR
/// (SVG and PNG data URI), and the backup codes that come into force with it. Shown once.
async fn totp_setup(State(s): State<AppState>, Auth(user): Auth) -> ApiResult<Json<Value>> {
    let setup = s.tf.totp().start_setup(&user.id, &user.username).await?;
    let png = base64::engine::general_purpose::STANDARD.encode(setup.qr_png()?);
    let codes: Vec<&str> = setup.backup_codes().iter().map(|c| c.expose()).collect();
    Ok(Json(json!({
        "secret": setup.secret_base32(),
        "otpauth_uri": setup.otpauth_uri(),
        "qr_svg": setup.qr_svg()?,
        "qr_png": format!("data:image/png;base64,{png}"),
        "backup_codes": codes,
    })))
}

#[derive(Deserialize)]
struct CodeRequest {
    code: String,
}

/// `POST /auth/2fa/totp/enable`: a code from the app confirms the pending secret.
async fn totp_enable(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<CodeRequest>,
) -> ApiResult<Json<Value>> {
    s.tf.totp().confirm_setup(&user.id, &req.code).await?;
    Ok(Json(status_json(&s, &user.id).await?))
}

#[derive(Deserialize, Default)]
struct EmailSetupRequest {
    email: Option<String>,
}

/// `POST /auth/2fa/email/setup`: sends a code to the given address (by default the account's).
async fn email_setup(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<EmailSetupRequest>,
) -> ApiResult<impl IntoResponse> {
    let email = req.email.map_or(user.email, |e| e.trim().to_owned());
    if !plausible_email(&email) {
        return Err(ApiError::invalid_input("Enter a valid email address."));
    }
    s.tf.email().start_setup(&user.id, &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "email": email,
            "code_expires_in": s.policy().email_code_ttl.as_secs(),
            "resend_after": s.policy().resend_cooldown.as_secs(),
        })),
    ))
}

/// `POST /auth/2fa/email/confirm`: the code proves the address; email becomes a factor.
async fn email_confirm(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<CodeRequest>,
) -> ApiResult<Json<Value>> {
    s.tf.email().confirm_setup(&user.id, &req.code).await?;
    Ok(Json(status_json(&s, &user.id).await?))
}

/// What a step-up code confirms: `?action=regenerate`, `?action=add_factor`, or (by default)
/// turning two-factor authentication off. The message names it, and the code confirms only that
/// change (`/auth/2fa/reauthenticate` takes a code of any).
#[derive(serde::Deserialize)]
struct StepUpQuery {
    action: Option<String>,
}

/// `POST /auth/2fa/step-up`: mails a code to the email factor, to answer disable or regenerate
/// without the authenticator app at hand.
async fn step_up(
    State(s): State<AppState>,
    Auth(user): Auth,
    axum::extract::Query(q): axum::extract::Query<StepUpQuery>,
) -> ApiResult<impl IntoResponse> {
    let action = match q.action.as_deref() {
        Some("regenerate") => twofactor::mail::SecurityAction::RegenerateBackupCodes,
        Some("add_factor") => twofactor::mail::SecurityAction::AddFactor,
        _ => twofactor::mail::SecurityAction::DisableTwoFactor,
    };
    s.tf.account().send_step_up_code(&user.id, action).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "sent",
            "code_expires_in": s.policy().email_code_ttl.as_secs(),
            "resend_after": s.policy().resend_cooldown.as_secs(),
        })),
    ))
}

#[derive(Deserialize)]
struct DisableRequest {
    password: String,
    code: CodeOrAssertion,
}

/// `POST /auth/2fa/disable`: the password and a current code (or a backup code, or a security
/// key's assertion after `/auth/2fa/security-keys/step-up/start`).
async fn disable(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<DisableRequest>,
) -> ApiResult<Json<Value>> {
    // The service checks the password with argon2 (through the host's PasswordVerifier): hold
    // an argon2 permit meanwhile, so this path counts against the same cap.
    let _permit = s.hashes.permit().await?;
    s.tf.account()
        .disable(&user.id, &req.password, &req.code.into_input())
        .await?;
    Ok(Json(status_json(&s, &user.id).await?))
}

#[derive(Deserialize)]
struct StepUpRequest {
    code: CodeOrAssertion,
}

/// `POST /auth/2fa/backup-codes/regenerate`: a current code (or a security key's assertion) buys
/// a new set; the old set is void.
async fn regenerate(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<StepUpRequest>,
) -> ApiResult<Json<Value>> {
    let codes =
        s.tf.backup_codes()
            .regenerate(&user.id, &req.code.into_input())
            .await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(Json(json!({ "backup_codes": codes })))
}

/// `POST /auth/2fa/reauthenticate`: a current code (or a security key's assertion) opens the
/// window in which a factor may be added (`reauth_required` otherwise, once the last check is
/// older than the policy's `reauth_window`).
async fn reauthenticate(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<StepUpRequest>,
) -> ApiResult<Json<Value>> {
    let method =
        s.tf.account()
            .reauthenticate(&user.id, &req.code.into_input())
            .await?;
    Ok(Json(json!({ "method": method.as_str() })))
}
