//! The server example's application: state, routes and handlers.
//!
//! `main.rs` reads the environment and serves this router; `tests/it/server_http.rs` includes this
//! module with `#[path]` and drives the same router in process.

mod tokens;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use twofactor::{
    ChallengeToken, Clock, EnrollmentStore, Keyring, LoginStep, Mailer, Method, OtpStore, Policy,
    Timestamp, TwoFactorService,
};

pub(crate) use tokens::Tokens;
use users::{normalize_username, Users};

/// The issuer shown in authenticator apps and mail.
const ISSUER: &str = "twofactor demo";
/// The largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024;

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
    /// The session tokens' signer.
    pub(crate) tokens: Tokens,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    tf: TwoFactorService,
    users: Arc<Users>,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
}

/// A clock shared between the service and the token code.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> Timestamp {
        self.0.now()
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
            .password_verifier(move |user: &str, password: &str| {
                for_password.check_password(user, password)
            })
            .display_names(move |user: &str| for_names.get(user).map(|u| u.username))
            .build()?;
        Ok(AppState {
            tf,
            users,
            tokens: Arc::new(backends.tokens),
            clock: backends.clock,
        })
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
        let status = if code == "invalid_code" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        };
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
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::UNAUTHORIZED)?;
        let id = state
            .tokens
            .verify_access(token.trim(), state.now())
            .ok_or(ApiError::UNAUTHORIZED)?;
        state.users.get(&id).map(Auth).ok_or(ApiError::UNAUTHORIZED)
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
/// tells who has an account. Only a free name gets a pending registration and a code.
async fn register(
    State(s): State<AppState>,
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
    // argon2id is deliberately slow: keep it off the async workers.
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || twofactor::hash_password(&password))
        .await
        .map_err(|_| ApiError::INTERNAL)??;
    // A taken name, or an address with too many registrations waiting, gets the same answer and
    // no mail.
    if let Some(id) = s.users.register(&username, &email, hash, s.now()) {
        s.tf.send_verification_code(&id, &email).await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "verification_sent",
            "code_expires_in": s.policy().email_code_ttl.as_secs(),
        })),
    ))
}

fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Deserialize)]
struct VerifyRequest {
    username: String,
    code: String,
}

/// `POST /auth/register/verify`: the emailed code turns the registration into an account and
/// signs the user in. A name with no pending registration gets the same answer as a wrong code.
async fn register_verify(
    State(s): State<AppState>,
    Body(req): Body<VerifyRequest>,
) -> ApiResult<impl IntoResponse> {
    let username = normalize_username(&req.username).ok_or_else(ApiError::invalid_code)?;
    let id = s
        .users
        .pending_id(&username, s.now())
        .ok_or_else(ApiError::invalid_code)?;
    match s.tf.verify_registration_code(&id, &req.code).await {
        Ok(_address) => {}
        Err(twofactor::Error::NothingPending | twofactor::Error::NotEnrolled) => {
            return Err(ApiError::invalid_code())
        }
        Err(e) => return Err(e.into()),
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
async fn login(State(s): State<AppState>, Body(req): Body<LoginRequest>) -> ApiResult<Response> {
    let username = normalize_username(&req.username).unwrap_or_default();
    let users = Arc::clone(&s.users);
    let user = tokio::task::spawn_blocking(move || users.authenticate(&username, &req.password))
        .await
        .map_err(|_| ApiError::INTERNAL)?
        .ok_or(ApiError::INVALID_CREDENTIALS)?;
    match s.tf.begin_login(&user.id).await? {
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

#[derive(Deserialize)]
struct CodeStepRequest {
    challenge: String,
    code: String,
}

/// `POST /auth/login/two-factor`: a TOTP code, the emailed code or a backup code → tokens.
async fn login_two_factor(
    State(s): State<AppState>,
    Body(req): Body<CodeStepRequest>,
) -> ApiResult<Json<Value>> {
    let token = ChallengeToken::parse(&req.challenge)?;
    let verified = s.tf.verify_login(&token, &req.code).await?;
    s.users.get(&verified.user).ok_or(ApiError::INVALID_TOKEN)?;
    Ok(Json(tokens_json(
        &s,
        &verified.user,
        json!({
            "method": verified.method.map(Method::as_str),
            "backup_codes_remaining": verified.backup_codes_remaining,
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
    pair_json(s.tokens.issue(user, s.now()), extra)
}

/// The token answer: `{access_token, refresh_token, token_type, expires_in, ...extra}`.
fn pair_json(pair: tokens::TokenPair, extra: Value) -> Value {
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

/// `POST /auth/refresh`: spends the refresh token for a new pair (rotation).
async fn refresh(
    State(s): State<AppState>,
    Body(req): Body<RefreshRequest>,
) -> ApiResult<Json<Value>> {
    let pair = s
        .tokens
        .refresh(&req.refresh_token, s.now())
        .ok_or(ApiError::INVALID_TOKEN)?;
    Ok(Json(pair_json(pair, json!({}))))
}

/// `POST /auth/logout`: revokes the refresh token. Always 204.
async fn logout(State(s): State<AppState>, Body(req): Body<RefreshRequest>) -> StatusCode {
    s.tokens.revoke(&req.refresh_token, s.now());
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// The signed-in user's two-factor settings.

/// `GET /auth/me`.
async fn me(Auth(user): Auth) -> Json<Value> {
    Json(json!({ "id": user.id, "username": user.username, "email": user.email }))
}

async fn status_json(s: &AppState, user: &str) -> ApiResult<Value> {
    let st = s.tf.status(user).await?;
    let methods: Vec<&str> = st.methods.iter().map(|m| m.as_str()).collect();
    Ok(json!({
        "enabled": st.enabled,
        "methods": methods,
        "totp_confirmed_at": st.totp_confirmed_at.map(Timestamp::as_unix_secs),
        "totp_pending": st.totp_pending,
        "email": st.email,
        "last_verified_at": st.last_verified_at.map(Timestamp::as_unix_secs),
        "backup_codes_remaining": st.backup_codes_remaining,
    }))
}

/// `GET /auth/2fa/status`.
async fn status(State(s): State<AppState>, Auth(user): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(status_json(&s, &user.id).await?))
}

/// `POST /auth/2fa/totp/setup`: a new secret (pending until confirmed), as text, otpauth URI, QR
/// (SVG and PNG data URI), and the backup codes that come into force with it. Shown once.
async fn totp_setup(State(s): State<AppState>, Auth(user): Auth) -> ApiResult<Json<Value>> {
    let setup = s.tf.start_totp_setup(&user.id, &user.username).await?;
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
    s.tf.confirm_totp_setup(&user.id, &req.code).await?;
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
    s.tf.start_email_setup(&user.id, &email).await?;
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
    s.tf.confirm_email_setup(&user.id, &req.code).await?;
    Ok(Json(status_json(&s, &user.id).await?))
}

/// What a step-up code confirms: `?action=regenerate`, `?action=add_factor`, or (by default)
/// turning two-factor authentication off. The message names it.
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
        Some("regenerate") => twofactor::SecurityAction::RegenerateBackupCodes,
        Some("add_factor") => twofactor::SecurityAction::AddFactor,
        _ => twofactor::SecurityAction::DisableTwoFactor,
    };
    s.tf.send_step_up_code(&user.id, action).await?;
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
    code: String,
}

/// `POST /auth/2fa/disable`: the password and a current code (or a backup code).
async fn disable(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<DisableRequest>,
) -> ApiResult<Json<Value>> {
    s.tf.disable(&user.id, &req.password, &req.code).await?;
    Ok(Json(status_json(&s, &user.id).await?))
}

/// `POST /auth/2fa/backup-codes/regenerate`: a current code buys a new set; the old set is void.
async fn regenerate(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<CodeRequest>,
) -> ApiResult<Json<Value>> {
    let codes = s.tf.regenerate_backup_codes(&user.id, &req.code).await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(Json(json!({ "backup_codes": codes })))
}
