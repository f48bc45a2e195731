//! Security keys and passkeys (WebAuthn): the relying party of the example, and the endpoints
//! that register, list, rename and remove keys and start a step-up with one.
//!
//! The browser runs the ceremonies: it hands the options of a `start` endpoint to
//! `navigator.credentials.create` or `.get` and posts back `PublicKeyCredential.toJSON()`.

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use twofactor::security_key::SecurityKeyPolicy;

use super::{status_json, ApiError, ApiResult, AppState, Auth, Body, CodeOrAssertion, ISSUER};

/// The security-key policy of a site served at `origin` (`http://localhost:8080`,
/// `https://demo.example.com`): the relying party id is the origin's host, which must be a
/// domain name. Browsers refuse WebAuthn on an IP address, so a local run is opened at
/// `http://localhost:PORT`, not `http://127.0.0.1:PORT`; `http` is accepted for `localhost` only.
///
/// # Errors
/// A message naming what is wrong with `origin`.
pub(crate) fn security_key_policy(origin: &str) -> Result<SecurityKeyPolicy, String> {
    let url = url::Url::parse(origin.trim())
        .map_err(|_| format!("{origin:?} is not an origin such as https://example.com"))?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{origin:?} is not an origin: give scheme, host and port only"
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(host)) => host.to_owned(),
        _ => {
            return Err(format!(
                "{origin:?}: security keys need a domain name, not an IP address \
                 (open http://localhost:PORT for a local run)"
            ))
        }
    };
    let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
    if !secure {
        return Err(format!(
            "{origin:?}: security keys need https (http only on localhost)"
        ));
    }
    let mut policy = SecurityKeyPolicy::new(host, url.origin().ascii_serialization());
    ISSUER.clone_into(&mut policy.rp_name);
    // The default: a touch of the key is the second factor after the password. Set
    // `policy.user_verification = UserVerification::Required` for keys that check a PIN or
    // biometrics (passkeys).
    policy.validate().map_err(|e| format!("{origin:?}: {e}"))?;
    Ok(policy)
}

/// A JSON body that may be left out (no `Content-Type`): then the type's default.
pub(crate) struct OptionalBody<T>(T);

impl<T, S> FromRequest<S> for OptionalBody<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(OptionalBody(T::default()));
        }
        let Body(value) = Body::<T>::from_request(req, state).await?;
        Ok(OptionalBody(value))
    }
}

/// The `{id}` of a key's path, with our 400 answer for one that does not decode.
pub(crate) struct KeyId(String);

impl<S: Send + Sync> FromRequestParts<S> for KeyId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BAD_REQUEST)?;
        Ok(KeyId(id))
    }
}

/// The answer for a key id the user does not have.
fn no_such_key() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such security key.",
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct RegisterStartRequest {
    display_name: Option<String>,
}

/// `POST /auth/2fa/security-keys/register/start` `{display_name?}`: the options for
/// `navigator.credentials.create`, `{"publicKey": …}`. Adding a key needs a fresh factor (403
/// `reauth_required` otherwise) and, in this example, a code factor beside it (409
/// `fallback_factor_required`).
pub(crate) async fn register_start(
    State(s): State<AppState>,
    Auth(user): Auth,
    OptionalBody(req): OptionalBody<RegisterStartRequest>,
) -> ApiResult<Json<Value>> {
    let name = req
        .display_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| user.username.clone());
    let options =
        s.tf.security_keys()
            .start_registration(&user.id, &name)
            .await?;
    Ok(Json(options.as_json().clone()))
}

#[derive(Deserialize)]
pub(crate) struct RegisterFinishRequest {
    /// `PublicKeyCredential.toJSON()` of the new credential, as an object or a string.
    response: CodeOrAssertion,
    label: Option<String>,
}

/// `POST /auth/2fa/security-keys/register/finish` `{response, label}`: 201 with the new key
/// (`{id, label, created_at, last_used_at}`); 400 `security_key_rejected` for a response that
/// fails verification (another origin, another ceremony), 401 `invalid_code` without a live
/// registration, 409 `already_enrolled` for a key the user has.
pub(crate) async fn register_finish(
    State(s): State<AppState>,
    Auth(user): Auth,
    Body(req): Body<RegisterFinishRequest>,
) -> ApiResult<impl IntoResponse> {
    let label = req
        .label
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| "Security key".to_owned());
    let info =
        s.tf.security_keys()
            .finish_registration(&user.id, &req.response.into_input(), &label)
            .await?;
    Ok((StatusCode::CREATED, Json(json!(info))))
}

/// `GET /auth/2fa/security-keys`: `{"security_keys": [{id, label, created_at, last_used_at}]}`,
/// oldest first.
pub(crate) async fn list(State(s): State<AppState>, Auth(user): Auth) -> ApiResult<Json<Value>> {
    let keys = s.tf.security_keys().list(&user.id).await?;
    Ok(Json(json!({ "security_keys": keys })))
}

#[derive(Deserialize)]
pub(crate) struct RenameRequest {
    label: String,
}

/// `PATCH /auth/2fa/security-keys/{id}` `{label}`: the renamed key; 404 `not_found`.
pub(crate) async fn rename(
    State(s): State<AppState>,
    Auth(user): Auth,
    KeyId(id): KeyId,
    Body(req): Body<RenameRequest>,
) -> ApiResult<Json<Value>> {
    let key =
        s.tf.security_keys()
            .rename(&user.id, &id, &req.label)
            .await?
            .ok_or_else(no_such_key)?;
    Ok(Json(json!(key)))
}

#[derive(Deserialize)]
pub(crate) struct RemoveRequest {
    password: String,
    code: CodeOrAssertion,
}

/// `DELETE /auth/2fa/security-keys/{id}` `{password, code}`: the password and a current code or
/// a security key's assertion (after `step-up/start`; the key being removed may sign it). The
/// status; 404 `not_found`, then as disable.
pub(crate) async fn remove(
    State(s): State<AppState>,
    Auth(user): Auth,
    KeyId(id): KeyId,
    Body(req): Body<RemoveRequest>,
) -> ApiResult<Json<Value>> {
    // The password is checked with argon2, as in disable: under the same cap.
    let _permit = s.hashes.permit().await?;
    let removed =
        s.tf.security_keys()
            .remove(&user.id, &id, &req.password, &req.code.into_input())
            .await;
    match removed {
        Ok(()) => {}
        // Said of a key id the user does not have (the check comes before the password's).
        Err(twofactor::Error::NotEnrolled) => return Err(no_such_key()),
        Err(e) => return Err(e.into()),
    }
    Ok(Json(status_json(&s, &user.id).await?))
}

/// `POST /auth/2fa/security-keys/step-up/start`: the options for `navigator.credentials.get`;
/// the assertion then goes where a code would (disable, regenerate, remove a key,
/// reauthenticate). 404 `not_enrolled` without a key.
pub(crate) async fn step_up_start(
    State(s): State<AppState>,
    Auth(user): Auth,
) -> ApiResult<Json<Value>> {
    let options = s.tf.security_keys().start_step_up(&user.id).await?;
    Ok(Json(options.as_json().clone()))
}
