//! Security keys and passkeys: registration, sign-in, step-up, renaming and removal.

use axum::http::{header, StatusCode};
use serde_json::{json, Value};

use crate::support::authenticator::SoftKey;
use crate::support::{assert_error, Server, PASSWORD, SITE, START};

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
