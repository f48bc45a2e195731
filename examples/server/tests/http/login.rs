//! Signing in: the password step, the code step, their limits and locks.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use twofactor::Policy;

use crate::support::{assert_error, assert_retry_after, Server, PASSWORD};

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

// ---- what an attacker tried against the example (each fails on the example before the fix) ----

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
