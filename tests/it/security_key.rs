//! Security keys and passkeys (WebAuthn): registration, the login answer, step-up, listing,
//! renaming and removal, against a real software authenticator (passkey-rs) that signs what the
//! service's options ask, and every way an assertion is refused.

use std::sync::Arc;
use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    events::Event, mail::MessagePurpose, security_key::SecurityKeyInfo,
    security_key::SecurityKeyPolicy, security_key::UserVerification, Error, LoginStep, Method,
    Policy,
};

use crate::support::authenticator::{options, policy, SoftKey, ORIGIN, RP_ID};
use crate::support::{Harness, PASSWORD};

fn harness() -> Harness {
    Harness::with_policy(policy())
}

/// Registers `key` for `user` (who must be allowed to add a factor now).
async fn add_key(h: &Harness, user: &str, key: &mut SoftKey, label: &str) -> SecurityKeyInfo {
    let options =
        h.tf.security_keys()
            .start_registration(user, "Alice Example")
            .await
            .unwrap();
    let response = key.create(options.as_json()).await;
    h.tf.security_keys()
        .finish_registration(user, &response, label)
        .await
        .unwrap()
}

/// A user with TOTP and one key.
async fn enrolled(h: &Harness, user: &str) -> (String, SoftKey, SecurityKeyInfo) {
    let (secret, _) = h.enroll_totp(user).await;
    let mut key = SoftKey::new();
    let info = add_key(h, user, &mut key, "YubiKey").await;
    (secret, key, info)
}

#[tokio::test]
async fn a_registered_key_answers_a_login() {
    let h = harness();
    let (_, mut key, info) = enrolled(&h, "u1").await;
    assert!(
        info.id.starts_with("sk_") && info.id.len() == 19,
        "{}",
        info.id
    );
    assert_eq!(info.label, "YubiKey");
    assert_eq!(info.created_at.as_unix_secs(), h.now());
    assert!(h.events.events().contains(&Event::FactorEnabled {
        user: "u1".into(),
        method: Method::SecurityKey,
    }));
    // Registration is told to the email factor, when there is one.
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(status.methods.contains(&Method::SecurityKey));
    assert_eq!(status.security_keys, 1);

    h.advance(600);
    let c = h.challenge("u1").await;
    assert!(c.methods().contains(&Method::SecurityKey));
    assert!(c.methods().contains(&Method::Totp));
    let opts = options(&c);
    assert_eq!(opts["publicKey"]["rpId"], RP_ID);
    let allowed = opts["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    // The login step's JSON carries the options for the browser.
    let step = serde_json::to_value(LoginStep::Challenge(h.challenge("u1").await)).unwrap();
    assert!(step["security_key"]["publicKey"]["challenge"].is_string());

    let assertion = key.get(&opts).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await
            .unwrap();
    assert_eq!(v.user(), "u1");
    assert_eq!(v.method(), Some(Method::SecurityKey));
    assert_eq!(v.backup_codes_remaining(), 10);
    assert!(h.events.events().contains(&Event::Verified {
        user: "u1".into(),
        method: Method::SecurityKey,
    }));
    let listed = h.tf.security_keys().list("u1").await.unwrap();
    assert_eq!(
        listed[0].last_used_at.map(|t| t.as_unix_secs()),
        Some(h.now())
    );
    // The challenge is consumed: the same assertion, or any answer, is refused now.
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await,
        Err(Error::InvalidChallenge)
    ));
}

#[tokio::test]
async fn verify_login_takes_the_assertion_json_and_refuses_broken_json_uncounted() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let c = h.challenge("u1").await;
    let assertion = key.get(&options(&c)).await;
    let v =
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await
            .unwrap();
    assert_eq!(v.method(), Some(Method::SecurityKey));
    // Garbage is malformed, not a counted attempt.
    let c = h.challenge("u1").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), "{not json")
            .await,
        Err(Error::MalformedCode)
    ));
    // The challenge is still open and takes a code (here a wrong one).
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), "123456")
            .await,
        Err(Error::InvalidCode { .. })
    ));
}

#[tokio::test]
async fn an_assertion_from_another_origin_is_refused_and_counted() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    for origin in [
        "http://evil.localhost:8080",
        "http://localhost:9999",
        "https://example.com",
    ] {
        let c = h.challenge("u1").await;
        let assertion = key.get_at(origin, &options(&c)).await.unwrap();
        match h
            .tf
            .verify_login(LoginContext::none(), c.token(), &assertion)
            .await
        {
            Err(Error::InvalidCode { attempts_remaining }) => {
                assert_eq!(attempts_remaining, Some(4), "{origin}")
            }
            other => panic!("{origin}: {other:?}"),
        }
        // The challenge stays answerable from the right origin.
        let good = key.get(&options(&c)).await;
        assert!(h
            .tf
            .verify_login(LoginContext::none(), c.token(), &good)
            .await
            .is_ok());
    }
    let rejected = h
        .events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::CodeRejected { .. }))
        .count();
    assert_eq!(rejected, 3);
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_on_every_later_challenge() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let first = h.challenge("u1").await;
    let assertion = key.get(&options(&first)).await;
    h.tf.verify_login(LoginContext::none(), first.token(), &assertion)
        .await
        .unwrap();
    // The signed challenge belongs to the first ceremony only.
    let second = h.challenge("u1").await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), second.token(), &assertion)
            .await,
        Err(Error::InvalidCode { .. })
    ));
    // An assertion signed for one live challenge does not answer another.
    let third = h.challenge("u1").await;
    let for_third = key.get(&options(&third)).await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), second.token(), &for_third)
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(h
        .tf
        .verify_login(LoginContext::none(), third.token(), &for_third)
        .await
        .is_ok());
}

#[tokio::test]
async fn an_assertion_for_another_users_challenge_is_refused() {
    let h = harness();
    let (_, mut alice_key, _) = enrolled(&h, "alice").await;
    let (_, _bob_key, _) = enrolled(&h, "bob").await;
    let alice = h.challenge("alice").await;
    let bob = h.challenge("bob").await;
    // Alice's key, asked with Bob's options, holds no credential of his.
    assert!(alice_key.get_at(ORIGIN, &options(&bob)).await.is_err());
    // Alice's assertion for her own challenge, sent against Bob's: refused, counted on Bob's.
    let assertion = alice_key.get(&options(&alice)).await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), bob.token(), &assertion)
            .await,
        Err(Error::InvalidCode {
            attempts_remaining: Some(4)
        })
    ));
    // And it still answers Alice's own.
    let v =
        h.tf.verify_login(LoginContext::none(), alice.token(), &assertion)
            .await
            .unwrap();
    assert_eq!(v.user(), "alice");
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    // Login: the ceremony lives as long as the challenge (300 s).
    let c = h.challenge("u1").await;
    let assertion = key.get(&options(&c)).await;
    h.advance(301);
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await,
        Err(Error::InvalidChallenge | Error::Expired)
    ));
    // Registration: the ceremony lives `ceremony_ttl` (300 s).
    h.enroll_totp("u2").await;
    let opts =
        h.tf.security_keys()
            .start_registration("u2", "U2")
            .await
            .unwrap();
    let mut other = SoftKey::new();
    let response = other.create(opts.as_json()).await;
    h.advance(301);
    assert!(matches!(
        h.tf.security_keys()
            .finish_registration("u2", &response, "late")
            .await,
        Err(Error::NothingPending)
    ));
    assert_eq!(h.tf.security_keys().list("u2").await.unwrap().len(), 0);
    // Step-up: the same.
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = key.get(opts.as_json()).await;
    h.advance(301);
    assert!(matches!(
        h.tf.account().reauthenticate("u1", &assertion).await,
        Err(Error::NothingPending)
    ));
}

#[tokio::test]
async fn a_removed_key_no_longer_answers() {
    let h = harness();
    let (secret, mut key, info) = enrolled(&h, "u1").await;
    let mut spare = SoftKey::new();
    add_key(&h, "u1", &mut spare, "Spare").await;
    // A challenge begun while the key was registered...
    let c = h.challenge("u1").await;
    let assertion = key.get(&options(&c)).await;
    h.advance(30);
    h.tf.security_keys()
        .remove("u1", &info.id, PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    assert!(h.events.events().contains(&Event::SecurityKeyRemoved {
        user: "u1".into(),
        key: info.id.clone(),
    }));
    // ...is not answered by it once it is removed: the removal ended the challenge.
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await,
        Err(Error::InvalidChallenge)
    ));
    // New challenges no longer offer it.
    let c = h.challenge("u1").await;
    let allowed = options(&c)["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(allowed, 1);
    assert!(key.get_at(ORIGIN, &options(&c)).await.is_err());
    let listed = h.tf.security_keys().list("u1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, "Spare");
    // Removing an unknown key is NotEnrolled, and checks nothing.
    assert!(matches!(
        h.tf.security_keys()
            .remove("u1", &info.id, PASSWORD, &h.totp(&secret))
            .await,
        Err(Error::NotEnrolled)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_assertions_on_one_challenge_exactly_one_passes() {
    let h = Arc::new(harness());
    let (_, mut key, _) = enrolled(&h, "u1").await;
    for round in 0..5 {
        let c = h.challenge("u1").await;
        let assertion = key.get(&options(&c)).await;
        let token = c.token().clone();
        let results = crate::support::race(64, |_| {
            let h = h.clone();
            let token = token.clone();
            let assertion = assertion.clone();
            async move {
                h.tf.verify_login(LoginContext::none(), &token, &assertion)
                    .await
            }
        })
        .await;
        let passed = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(passed, 1, "round {round}: {results:?}");
        // The losers lost the race for the challenge, or found its attempts spent: none was
        // judged a wrong answer.
        assert!(
            results.iter().all(|r| matches!(
                r,
                Ok(_) | Err(Error::InvalidChallenge | Error::TooManyAttempts)
            )),
            "round {round}: {results:?}"
        );
    }
    // Nothing was charged to the user, and a repeat of one assertion is not a clone signal.
    assert!(!h.events.events().iter().any(|e| matches!(
        e,
        Event::SecurityKeyCloneSuspected { .. }
            | Event::CodeRejected { .. }
            | Event::LockedOut { .. }
    )));
    assert!(h.tf.begin_login(LoginContext::none(), "u1").await.is_ok());
}

#[tokio::test]
async fn a_counter_going_backwards_is_refused_and_reported() {
    let h = harness();
    let (_, mut key, info) = enrolled(&h, "u1").await;
    for _ in 0..3 {
        let c = h.challenge("u1").await;
        let a = key.get(&options(&c)).await;
        h.tf.verify_login(LoginContext::none(), c.token(), &a)
            .await
            .unwrap();
    }
    // A clone made after the first login signs with counter 2 now; the stored counter is 3.
    key.set_counter(1);
    let c = h.challenge("u1").await;
    let cloned = key.get(&options(&c)).await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &cloned)
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(h
        .events
        .events()
        .contains(&Event::SecurityKeyCloneSuspected {
            user: "u1".into(),
            key: info.id.clone(),
        }));
}

#[tokio::test]
async fn a_lower_counter_finished_later_on_an_older_challenge_is_refused() {
    // Each ceremony keeps a snapshot of the key taken at its start; the stored counter is the
    // one that decides.
    let h = harness();
    let (_, mut key, info) = enrolled(&h, "u1").await;
    let older = h.challenge("u1").await;
    let newer = h.challenge("u1").await;
    let first = key.get(&options(&older)).await; // counter 1
    let second = key.get(&options(&newer)).await; // counter 2
    h.tf.verify_login(LoginContext::none(), newer.token(), &second)
        .await
        .unwrap();
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), older.token(), &first)
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(h
        .events
        .events()
        .contains(&Event::SecurityKeyCloneSuspected {
            user: "u1".into(),
            key: info.id,
        }));
}

#[tokio::test]
async fn a_key_without_a_counter_signs_in_every_time() {
    let h = harness();
    h.enroll_totp("u1").await;
    let mut key = SoftKey::with_counter(false);
    add_key(&h, "u1", &mut key, "Passkey").await;
    for _ in 0..3 {
        let c = h.challenge("u1").await;
        let a = key.get(&options(&c)).await;
        assert!(h
            .tf
            .verify_login(LoginContext::none(), c.token(), &a)
            .await
            .is_ok());
    }
}

#[tokio::test]
async fn failed_assertions_count_toward_the_challenge_cap_and_the_lock() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let c = h.challenge("u1").await;
    let bad = key
        .get_at("http://evil.localhost:8080", &options(&c))
        .await
        .unwrap();
    for left in (0..5).rev() {
        match h
            .tf
            .verify_login(LoginContext::none(), c.token(), &bad)
            .await
        {
            Err(Error::InvalidCode { attempts_remaining }) => {
                assert_eq!(attempts_remaining, Some(left))
            }
            other => panic!("{other:?}"),
        }
    }
    // The challenge is void, even for a good assertion.
    let good = key.get(&options(&c)).await;
    assert!(matches!(
        h.tf.verify_login(LoginContext::none(), c.token(), &good)
            .await,
        Err(Error::TooManyAttempts | Error::InvalidChallenge)
    ));
    // Five more failures on a second challenge reach the user's threshold (10): locked.
    let c = h.challenge("u1").await;
    let bad = key
        .get_at("http://evil.localhost:8080", &options(&c))
        .await
        .unwrap();
    for _ in 0..5 {
        let _ =
            h.tf.verify_login(LoginContext::none(), c.token(), &bad)
                .await;
    }
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await,
        Err(Error::Locked { .. })
    ));
}

#[tokio::test]
async fn a_key_passes_step_up_for_every_change() {
    let h = harness();
    let (_, mut key, info) = enrolled(&h, "u1").await;
    h.advance(3600);
    // A session alone may not add a factor...
    assert!(matches!(
        h.tf.security_keys().start_registration("u1", "Alice").await,
        Err(Error::ReauthRequired)
    ));
    // ...a key's assertion opens the window.
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = key.get(opts.as_json()).await;
    assert_eq!(
        h.tf.account()
            .reauthenticate("u1", &assertion)
            .await
            .unwrap(),
        Method::SecurityKey
    );
    // The step-up ceremony is single use.
    assert!(matches!(
        h.tf.account().reauthenticate("u1", &assertion).await,
        Err(Error::NothingPending)
    ));
    let mut second = SoftKey::new();
    add_key(&h, "u1", &mut second, "Backup key").await;

    // Regenerating backup codes.
    h.advance(3600);
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = second.get(opts.as_json()).await;
    let codes =
        h.tf.backup_codes()
            .regenerate("u1", &assertion)
            .await
            .unwrap();
    assert_eq!(codes.len(), 10);

    // Removing a key: the password and an assertion (of the key itself, here).
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = key.get(opts.as_json()).await;
    assert!(matches!(
        h.tf.security_keys()
            .remove("u1", &info.id, "wrong password", &assertion)
            .await,
        Err(Error::InvalidPassword)
    ));
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = key.get(opts.as_json()).await;
    h.tf.security_keys()
        .remove("u1", &info.id, PASSWORD, &assertion)
        .await
        .unwrap();
    let notice = h.mailer.last_to("u1@example.com");
    assert!(notice.is_none() || notice.unwrap().purpose != MessagePurpose::TwoFactorDisabled);

    // Disabling: the password and the remaining key's assertion.
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let assertion = second.get(opts.as_json()).await;
    h.tf.account()
        .disable("u1", PASSWORD, &assertion)
        .await
        .unwrap();
    let status = h.tf.account().status("u1").await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.security_keys, 0);
}

#[tokio::test]
async fn removing_the_last_factor_turns_two_factor_off() {
    let mut p = policy();
    p.security_keys.as_mut().unwrap().allow_key_alone = true;
    let h = Harness::with_policy(p);
    let mut key = SoftKey::new();
    // With the policy's consent, a key alone enables two-factor authentication.
    let info = add_key(&h, "u1", &mut key, "Only key").await;
    let c = h.challenge("u1").await;
    assert_eq!(c.methods(), &[Method::SecurityKey]);
    let a = key.get(&options(&c)).await;
    h.tf.verify_login(LoginContext::none(), c.token(), &a)
        .await
        .unwrap();
    let opts = h.tf.security_keys().start_step_up("u1").await.unwrap();
    let a = key.get(opts.as_json()).await;
    h.tf.security_keys()
        .remove("u1", &info.id, PASSWORD, &a)
        .await
        .unwrap();
    assert!(h
        .events
        .events()
        .contains(&Event::FactorDisabled { user: "u1".into() }));
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await.unwrap(),
        LoginStep::Complete(_)
    ));
}

#[tokio::test]
async fn by_default_a_key_is_added_beside_a_code_factor() {
    let h = harness();
    assert!(matches!(
        h.tf.security_keys().start_registration("u1", "Alice").await,
        Err(Error::FallbackFactorRequired)
    ));
    assert_eq!(Error::FallbackFactorRequired.http_status(), 409);
    h.enroll_email("u1", "u1@example.com").await;
    let mut key = SoftKey::new();
    add_key(&h, "u1", &mut key, "Key").await;
    assert_eq!(
        h.mailer.last_to("u1@example.com").unwrap().purpose,
        MessagePurpose::FactorAdded
    );
    // An email-and-key user is offered both; the email code is sent as before.
    let c = h.challenge("u1").await;
    assert_eq!(c.methods(), &[Method::Email, Method::SecurityKey]);
    assert!(c.email_sent());
}

#[tokio::test]
async fn registration_excludes_known_keys_and_refuses_duplicates() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let opts =
        h.tf.security_keys()
            .start_registration("u1", "Alice")
            .await
            .unwrap();
    let excluded = opts.as_json()["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(excluded, 1);
    // The authenticator refuses to register itself twice (CTAP2 credential excluded).
    assert!(key.create_at(ORIGIN, opts.as_json()).await.is_err());
    // The ceremony is single use and bound to the user: another user cannot finish it.
    let mut other = SoftKey::new();
    let response = other.create(opts.as_json()).await;
    assert!(matches!(
        h.tf.security_keys()
            .finish_registration("u2", &response, "x")
            .await,
        Err(Error::NothingPending)
    ));
    let info =
        h.tf.security_keys()
            .finish_registration("u1", &response, "Second")
            .await
            .unwrap();
    assert_eq!(info.label, "Second");
    assert!(matches!(
        h.tf.security_keys()
            .finish_registration("u1", &response, "Again")
            .await,
        Err(Error::NothingPending)
    ));
    assert_eq!(h.tf.security_keys().list("u1").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_registration_response_that_does_not_verify_is_rejected() {
    let h = harness();
    h.enroll_totp("u1").await;
    let mut key = SoftKey::new();
    for (origin, body) in [
        ("http://evil.localhost:8080", None),
        (ORIGIN, Some("{\"id\": 1}")),
        (ORIGIN, Some("not json")),
    ] {
        let opts =
            h.tf.security_keys()
                .start_registration("u1", "Alice")
                .await
                .unwrap();
        let response = key.create_at(origin, opts.as_json()).await.unwrap();
        let response = body.map(str::to_owned).unwrap_or(response);
        let err =
            h.tf.security_keys()
                .finish_registration("u1", &response, "Key")
                .await
                .unwrap_err();
        assert!(
            matches!(err, Error::SecurityKeyRejected),
            "{origin}: {err:?}"
        );
        assert_eq!(err.http_status(), 400);
    }
    assert!(h.tf.security_keys().list("u1").await.unwrap().is_empty());
}

#[tokio::test]
async fn keys_are_listed_renamed_and_capped() {
    let mut p = policy();
    p.security_keys.as_mut().unwrap().max_keys = 2;
    let h = Harness::with_policy(p);
    let (_, _, first) = enrolled(&h, "u1").await;
    let mut second = SoftKey::new();
    add_key(&h, "u1", &mut second, "Second").await;
    assert!(matches!(
        h.tf.security_keys().start_registration("u1", "Alice").await,
        Err(Error::InvalidInput(_))
    ));
    // The renamed key comes back; the same name again changes nothing and still finds it.
    for _ in 0..2 {
        let renamed =
            h.tf.security_keys()
                .rename("u1", &first.id, "Office key")
                .await
                .unwrap()
                .expect("the key exists");
        assert_eq!(
            (renamed.id.as_str(), renamed.label.as_str()),
            (first.id.as_str(), "Office key")
        );
    }
    assert!(h
        .tf
        .security_keys()
        .rename("u1", "sk_unknown", "x")
        .await
        .unwrap()
        .is_none());
    for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
        assert!(matches!(
            h.tf.security_keys().rename("u1", &first.id, bad).await,
            Err(Error::InvalidInput(_))
        ));
    }
    let labels: Vec<_> =
        h.tf.security_keys()
            .list("u1")
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.label)
            .collect();
    assert_eq!(labels, ["Office key", "Second"]);
    // The listing never shows the credential.
    let json = serde_json::to_string(&h.tf.security_keys().list("u1").await.unwrap()).unwrap();
    assert!(!json.contains("cred"), "{json}");
}

/// Registers a key for a TOTP user under `policy` and signs in with it, checking that both
/// ceremonies ask for user verification `uv`; returns the registration's `publicKey` options.
async fn register_and_sign_in(policy: Policy, uv: &str) -> serde_json::Value {
    let h = Harness::with_policy(policy);
    h.enroll_totp("u1").await;
    let opts =
        h.tf.security_keys()
            .start_registration("u1", "Alice")
            .await
            .unwrap();
    let pk = opts.as_json()["publicKey"].clone();
    assert_eq!(pk["authenticatorSelection"]["userVerification"], uv);
    let mut key = SoftKey::new();
    let response = key.create(opts.as_json()).await;
    h.tf.security_keys()
        .finish_registration("u1", &response, "Key")
        .await
        .unwrap();
    let c = h.challenge("u1").await;
    assert_eq!(options(&c)["publicKey"]["userVerification"], uv);
    let a = key.get(&options(&c)).await;
    assert_eq!(
        h.tf.verify_login(LoginContext::none(), c.token(), &a)
            .await
            .unwrap()
            .method(),
        Some(Method::SecurityKey)
    );
    pk
}

#[tokio::test]
async fn by_default_a_touch_is_enough_and_nothing_asks_for_more() {
    // The options must be ones a browser registers: a credential-protection request for user
    // verification beside `userVerification: "preferred"` is refused by Chromium.
    let pk = register_and_sign_in(policy(), "discouraged").await;
    assert!(
        pk["extensions"]["credentialProtectionPolicy"].is_null(),
        "{pk}"
    );
}

#[tokio::test]
async fn required_user_verification_uses_the_passkey_ceremonies() {
    let mut p = policy();
    p.security_keys.as_mut().unwrap().user_verification = UserVerification::Required;
    register_and_sign_in(p, "required").await;
}

async fn recovery_pending(h: &Harness) -> bool {
    let status = h.tf.account().status("u1").await.unwrap();
    status.recovery_pending_until.is_some()
}

#[tokio::test]
async fn a_key_login_cancels_a_pending_recovery_and_leaves_the_password_limit() {
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    h.tf.recovery().request("u1", PASSWORD).await.unwrap();
    assert!(recovery_pending(&h).await);
    // Four wrong passwords, then a pass by key...
    for _ in 0..4 {
        assert!(matches!(
            h.tf.recovery().request("u1", "wrong").await,
            Err(Error::InvalidPassword)
        ));
    }
    let c = h.challenge("u1").await;
    let a = key.get(&options(&c)).await;
    h.tf.verify_login(LoginContext::none(), c.token(), &a)
        .await
        .unwrap();
    // ...cancels the recovery, as a code does...
    assert!(!recovery_pending(&h).await);
    // ...and leaves the run of wrong passwords where it was: six more reach the limit of ten,
    // and the next is not evaluated.
    for _ in 0..6 {
        assert!(matches!(
            h.tf.recovery().request("u1", "wrong").await,
            Err(Error::InvalidPassword)
        ));
    }
    assert!(matches!(
        h.tf.recovery().request("u1", PASSWORD).await,
        Err(Error::Locked { .. })
    ));
}

#[tokio::test]
async fn options_and_state_hold_no_secret_and_debug_shows_no_token() {
    let h = harness();
    // A user id with characters outside base64url, so that no random challenge or credential id
    // in the options can contain it by chance (a two-letter id did, in about 1.5% of runs).
    let user = "u1@example.com";
    let (secret, mut key, _) = enrolled(&h, user).await;
    let c = h.challenge(user).await;
    let debug = format!("{c:?}");
    assert!(!debug.contains(&c.token().as_str()[5..]), "{debug}");
    let opts = options(&c).to_string();
    assert!(
        !opts.contains(&secret),
        "the TOTP secret never reaches the options"
    );
    assert!(
        !opts.contains(user),
        "the user id is not in the options: {opts}"
    );
    let a = key.get(&options(&c)).await;
    h.tf.verify_login(LoginContext::none(), c.token(), &a)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_with_a_foreign_origin_or_bad_numbers_is_refused() {
    for change in [
        |p: &mut SecurityKeyPolicy| p.origins = vec!["https://evil.test".into()],
        |p: &mut SecurityKeyPolicy| p.origins = vec![],
        |p: &mut SecurityKeyPolicy| p.origins = vec!["not a url".into()],
        |p: &mut SecurityKeyPolicy| p.max_keys = 0,
        |p: &mut SecurityKeyPolicy| p.ceremony_ttl = Duration::from_secs(3600),
        |p: &mut SecurityKeyPolicy| p.rp_name = String::new(),
    ] {
        let mut p = policy();
        change(p.security_keys.as_mut().unwrap());
        assert!(matches!(p.validate(), Err(Error::InvalidConfig(_))));
    }
    let mut p = policy();
    p.security_keys
        .as_mut()
        .unwrap()
        .origins
        .push("http://app.localhost:3000".into());
    assert!(p.validate().is_ok());
}

#[tokio::test]
async fn without_a_security_key_policy_keys_are_neither_offered_nor_registered() {
    let h = harness();
    enrolled(&h, "u1").await;
    // The same stores, a service without the policy (a login reads no sealed secret, so a
    // keyring of its own does).
    let plain = h
        .like()
        .policy(Policy::default())
        .keys(twofactor::Keyring::generate())
        .build()
        .tf;
    assert!(matches!(
        plain.security_keys().start_registration("u1", "A").await,
        Err(Error::InvalidConfig(_))
    ));
    match plain.begin_login(LoginContext::none(), "u1").await.unwrap() {
        LoginStep::Challenge(c) => {
            assert!(!c.methods().contains(&Method::SecurityKey));
            assert!(c.security_key().is_none());
        }
        LoginStep::Complete(_) => panic!("TOTP is still enrolled"),
    }
}

#[tokio::test]
async fn a_retry_after_a_store_fault_passes_or_is_refused_but_never_cries_clone() {
    use crate::support::faults::{self, Mode};
    // Every store call of a key login fails once, before or after it took effect; the retry
    // with the same assertion is Verified or InvalidChallenge (the lost try took the
    // challenge), never a second pass and never a clone signal: the key's record remembers
    // the ceremony it last answered, so the same assertion again is a repeat.
    let mut verified_on_retry = 0;
    for at in 1..=4 {
        for after in [false, true] {
            let (h, faults) = faults::harness(policy());
            let (_, mut key, _) = enrolled(&h, "u1").await;
            let c = h.challenge("u1").await;
            let a = key.get(&options(&c)).await;
            faults.arm(Mode::Once { at, after }, true);
            let first = h.tf.verify_login(LoginContext::none(), c.token(), &a).await;
            faults.disarm();
            let retry = h.tf.verify_login(LoginContext::none(), c.token(), &a).await;
            let passes = [&first, &retry].iter().filter(|r| r.is_ok()).count();
            assert!(
                passes <= 1,
                "call {at} after={after}: {first:?} / {retry:?}"
            );
            if first.is_err() {
                assert!(
                    matches!(retry, Ok(_) | Err(Error::InvalidChallenge)),
                    "call {at} after={after}: {first:?} then {retry:?}"
                );
                verified_on_retry += usize::from(retry.is_ok());
            }
            assert!(
                !h.events
                    .events()
                    .iter()
                    .any(|e| matches!(e, Event::SecurityKeyCloneSuspected { .. })),
                "call {at} after={after}"
            );
        }
    }
    // Only a settle that took the challenge before failing leaves nothing to the retry; a save
    // of the key's record that took effect is the repeat.
    assert_eq!(verified_on_retry, 7);
}

#[tokio::test]
async fn no_input_makes_a_ceremony_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    // A good assertion and registration response, then random edits of them and random text:
    // every answer is a typed 4xx error (or, for a registration response still whole, a
    // success), never a panic. The assertion signed an earlier challenge than the ones it is
    // tried on, so it never passes, edited or not.
    let h = harness();
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let c = h.challenge("u1").await;
    let assertion = key.get(&options(&c)).await;
    let opts =
        h.tf.security_keys()
            .start_registration("u1", "Alice")
            .await
            .unwrap();
    let registration = SoftKey::new().create(opts.as_json()).await;
    let edits = |good: String| {
        let len = good.len();
        let inserted = good.clone();
        prop_oneof![
            any::<String>().prop_map(|s| format!("{{{s}")),
            (0..len, any::<char>()).prop_map(move |(at, ch)| {
                let mut s = inserted.clone();
                let at = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                s.insert(at, ch);
                s
            }),
            (0..len).prop_map(move |cut| good.get(..cut).unwrap_or("{").to_owned()),
            Just(format!("{{\"id\": \"{}\"}}", "A".repeat(70_000))),
        ]
    };
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = std::sync::Mutex::new(Vec::new());
    runner
        .run(
            &(edits(assertion.clone()), edits(registration.clone())),
            |pair| {
                cases.lock().unwrap().push(pair);
                Ok(())
            },
        )
        .unwrap();
    for (a, r) in cases.into_inner().unwrap() {
        // Every assertion here, edited or not, signed the first challenge: on this one it must
        // fail.
        let c = h.challenge("u1").await;
        match h.tf.verify_login(LoginContext::none(), c.token(), &a).await {
            Ok(v) => panic!(
                "an assertion for an earlier challenge passed: {v:?} for {}",
                a.chars().take(200).collect::<String>()
            ),
            Err(e) => assert!((400..500).contains(&e.http_status()), "{e:?}"),
        }
        h.tf.security_keys()
            .start_registration("u1", "Alice")
            .await
            .map(|_| ())
            .or_else(|e| match e {
                Error::ReauthRequired => Ok(()),
                e => Err(e),
            })
            .unwrap();
        match h
            .tf
            .security_keys()
            .finish_registration("u1", &r, "k")
            .await
        {
            Ok(_) | Err(Error::AlreadyEnrolled | Error::NothingPending) => {}
            Err(e) => assert!((400..500).contains(&e.http_status()), "{e:?}"),
        }
        // Keep the user unlocked and the reauth window open for the next case.
        let fresh = h.challenge("u1").await;
        let good = key.get(&options(&fresh)).await;
        h.tf.verify_login(LoginContext::none(), fresh.token(), &good)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_key_rotation_loses_no_key_and_no_ceremony() {
    // Registered under the old keyring, a key signs in through the rotated one; a challenge
    // and a registration begun before the rotation finish after it; the user handle a key
    // keeps does not change.
    let old = twofactor::Keyring::generate();
    let h = Harness::with(policy(), old.clone());
    let (_, mut key, _) = enrolled(&h, "u1").await;
    let before = h.challenge("u1").await;
    let opts =
        h.tf.security_keys()
            .start_registration("u1", "Alice")
            .await
            .unwrap();
    let handle = opts.as_json()["publicKey"]["user"]["id"].clone();
    let rotated = h.rekeyed(old.rotate_to(&twofactor::Keyring::generate())).tf;
    let a = key.get(&options(&before)).await;
    assert_eq!(
        rotated
            .verify_login(LoginContext::none(), before.token(), &a)
            .await
            .unwrap()
            .method(),
        Some(Method::SecurityKey)
    );
    let mut second = SoftKey::new();
    let response = second.create(opts.as_json()).await;
    rotated
        .security_keys()
        .finish_registration("u1", &response, "After rotation")
        .await
        .unwrap();
    let again = rotated
        .security_keys()
        .start_registration("u1", "Alice")
        .await
        .unwrap();
    assert_eq!(again.as_json()["publicKey"]["user"]["id"], handle);
    let LoginStep::Challenge(c) = rotated
        .begin_login(LoginContext::none(), "u1")
        .await
        .unwrap()
    else {
        panic!("a challenge");
    };
    let a = second.get(&options(&c)).await;
    assert!(rotated
        .verify_login(LoginContext::none(), c.token(), &a)
        .await
        .is_ok());
}
