//! Registration: an account, its address verified by a mailed code.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;
use twofactor::{
    error::DeliveryError, mail::Mailer, mail::Message, mail::MessagePurpose,
    testing::RecordingMailer, Policy,
};

use crate::support::{assert_error, Server, PASSWORD};

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
