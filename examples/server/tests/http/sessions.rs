//! Session tokens: access, refresh and challenge tokens, rotation, expiry and logout.

use axum::http::{header, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{assert_error, Server, PASSWORD, START};

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

// ---- what an attacker tried against the example (each fails on the example before the fix) ----

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
