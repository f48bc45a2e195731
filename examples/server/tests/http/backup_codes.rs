//! Backup codes: one sign-in each, and regenerated after a step-up code.

use axum::http::StatusCode;
use serde_json::json;
use twofactor::mail::MessagePurpose;

use crate::support::{assert_error, Server};

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
    // A step-up code confirms the change it was sent for.
    let r = s
        .call(
            "POST",
            "/auth/2fa/step-up?action=regenerate",
            Some(&nia.access),
            None,
        )
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
