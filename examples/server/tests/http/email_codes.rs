//! The email factor: its setup, the mailed login code, resending it and the send cap.

use axum::http::StatusCode;
use serde_json::json;
use twofactor::mail::MessagePurpose;

use crate::support::{assert_error, assert_retry_after, Server};

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

/// The statuses the manual's server page lists for `/auth/login/resend` besides 202, 404 and 429 (above).
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
