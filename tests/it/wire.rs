//! The types a host sends over the wire: `ChallengeToken` as its string form with a strict parse,
//! `Serialize` on `Status`, `Verified`, `Method`, `LoginStep`, and the opt-in `TotpSetupResponse`.

use serde_json::{json, Value};
use twofactor::LoginContext;
use twofactor::{ChallengeToken, LoginStep, Method};

use crate::support::Harness;

/// A well-formed token from a real challenge.
async fn a_token(h: &Harness) -> ChallengeToken {
    h.enroll_totp("u1").await;
    h.challenge("u1").await.token().clone()
}

#[tokio::test]
async fn a_challenge_token_is_its_string_form() {
    let h = Harness::new();
    let token = a_token(&h).await;
    let text = token.as_str().to_owned();

    assert_eq!(text.parse::<ChallengeToken>().unwrap(), token);
    assert_eq!(serde_json::to_value(&token).unwrap(), json!(text));
    let back: ChallengeToken = serde_json::from_value(json!(text)).unwrap();
    assert_eq!(back, token);
    // In a request body, as a host would declare it.
    #[derive(serde::Deserialize)]
    struct Verify {
        challenge: ChallengeToken,
    }
    let req: Verify = serde_json::from_value(json!({ "challenge": text })).unwrap();
    assert_eq!(req.challenge, token);
    // Debug stays redacted, also inside a host's struct.
    assert_eq!(format!("{back:?}"), "ChallengeToken([redacted])");
}

#[tokio::test]
async fn a_challenge_token_parses_strictly_and_never_echoes_the_input() {
    let h = Harness::new();
    let text = a_token(&h).await.as_str().to_owned();
    let body = &text["tfc2_".len()..];
    let last = body.chars().last().unwrap();
    // 44 bytes in 59 characters: the last carries 2 unused bits, which must be zero.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = ALPHABET.find(last).unwrap();
    assert_eq!(
        value % 4,
        0,
        "a canonical last character has its 2 low bits clear"
    );
    let noncanonical_last = ALPHABET.chars().nth(value + 1).unwrap();
    let mut noncanonical = text.clone();
    noncanonical.pop();
    noncanonical.push(noncanonical_last);
    let bad = [
        String::new(),
        body.to_owned(),
        format!("TFC2_{body}"),
        format!("tfc1_{body}"),
        format!(" {text}"),
        format!("{text} "),
        format!("{text}="),
        format!("{text}A"),
        text[..text.len() - 1].to_owned(),
        text.replace('_', "/"),
        format!("tfc2_{}", "+".repeat(59)),
        noncanonical,
        "tfc2_".to_owned() + &"é".repeat(30),
    ];
    for input in &bad {
        assert!(input.parse::<ChallengeToken>().is_err(), "{input:?}");
        let e = serde_json::from_value::<ChallengeToken>(json!(input)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("invalid challenge token"), "{msg}");
        if input.len() > 8 {
            assert!(
                !msg.contains(&input[5..]),
                "the error repeats the input: {msg}"
            );
        }
    }
    // Not a string at all.
    for v in [
        json!(null),
        json!(42),
        json!([text]),
        json!({ "token": text }),
    ] {
        assert!(serde_json::from_value::<ChallengeToken>(v).is_err());
    }
}

#[tokio::test]
async fn login_steps_serialize_for_the_client() {
    let h = Harness::new();
    h.enroll_totp("u1").await;
    let step = h.tf.begin_login(LoginContext::none(), "u1").await.unwrap();
    let LoginStep::Challenge(ch) = &step else {
        panic!("expected a challenge")
    };
    let v = serde_json::to_value(&step).unwrap();
    assert_eq!(v["step"], "challenge");
    assert_eq!(v["token"], ch.token().as_str());
    assert_eq!(v["methods"], json!(["totp", "backup_code"]));
    assert_eq!(v["expires_at"], json!(ch.expires_at().as_unix_secs()));
    assert_eq!(v["email_sent"], json!(false));
    assert_eq!(v["recovery_pending"], json!(false));

    let step =
        h.tf.begin_login(LoginContext::none(), "nobody")
            .await
            .unwrap();
    let v = serde_json::to_value(&step).unwrap();
    assert_eq!(v["step"], "complete");
    assert_eq!(v["user"], "nobody");
    assert_eq!(v["method"], Value::Null);
}

#[tokio::test]
async fn verified_status_and_method_serialize() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let verified =
        h.tf.verify_login(LoginContext::none(), ch.token(), &h.totp(&secret))
            .await
            .unwrap();
    assert_eq!(
        serde_json::to_value(&verified).unwrap(),
        json!({
            "user": "u1",
            "method": "totp",
            "backup_codes_remaining": 10,
            "verified_at": h.now(),
            "recovery_cancelled": false,
        })
    );
    let status = serde_json::to_value(h.tf.account().status("u1").await.unwrap()).unwrap();
    assert_eq!(status["enabled"], json!(true));
    assert_eq!(status["methods"], json!(["totp", "backup_code"]));
    assert_eq!(status["backup_codes_remaining"], json!(10));
    assert_eq!(status["last_verified_at"], json!(h.now()));
    assert_eq!(status["email"], Value::Null);
    assert_eq!(
        serde_json::to_value(Method::BackupCode).unwrap(),
        json!("backup_code")
    );
}

#[tokio::test]
async fn a_totp_setup_serializes_only_through_its_response_type() {
    let h = Harness::new();
    let setup =
        h.tf.totp()
            .start_setup("u1", "alice@example.com")
            .await
            .unwrap();
    let response = setup.to_response();
    assert_eq!(format!("{response:?}"), "TotpSetupResponse([redacted])");
    let v = serde_json::to_value(&response).unwrap();
    assert_eq!(v["secret"], setup.secret_base32());
    assert_eq!(v["otpauth_uri"], setup.otpauth_uri());
    let codes: Vec<&str> = setup.backup_codes().iter().map(|c| c.expose()).collect();
    assert_eq!(v["backup_codes"], json!(codes));
    // No QR unless asked for.
    assert!(
        v.get("qr_svg").is_none() && v.get("qr_png").is_none(),
        "{v}"
    );
    let response = response.with_qr_svg().unwrap();
    #[cfg(feature = "qr-png")]
    let response = response.with_qr_png().unwrap();
    let v = serde_json::to_value(response).unwrap();
    assert!(v["qr_svg"].as_str().unwrap().contains("<svg"));
    #[cfg(feature = "qr-png")]
    assert!(v["qr_png"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,iVBOR"));
}
