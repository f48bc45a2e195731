//! Turning two-factor authentication on with TOTP, and off again.

use axum::http::{header, StatusCode};
use base64::Engine as _;
use serde_json::json;
use twofactor::totp::TotpSecret;

use crate::support::{assert_error, Server, PASSWORD, START};

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
