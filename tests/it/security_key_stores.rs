//! Security keys on every store setup (see `every_store!`): registration, logins that record
//! the signature counter in the enrolment record, a replay refused, concurrent submissions of one
//! assertion, step-up with the key and its removal. On Redis and PostgreSQL the concurrent
//! submissions really interleave.

use twofactor::LoginContext;
use twofactor::{
    events::Event, testing::RecordingEvents, Error, LoginStep, Method, TwoFactorService,
};

use crate::support::authenticator::{options, policy, SoftKey};
use crate::support::{every_store, fresh_user, race, Harness, Stores, PASSWORD};

/// A login challenge (the user has a factor).
async fn challenge(tf: &TwoFactorService, user: &str) -> twofactor::Challenge {
    match tf.begin_login(LoginContext::none(), user).await.unwrap() {
        LoginStep::Challenge(c) => c,
        LoginStep::Complete(_) => panic!("expected a challenge"),
    }
}

/// The signature counter and last ceremony stored for the user's only key.
async fn stored_key(stores: &Stores, user: &str) -> (u32, Option<String>) {
    let (rec, _) = stores.1.load(user).await.unwrap().expect("a record");
    assert_eq!(rec.security_keys.len(), 1);
    let k = &rec.security_keys[0];
    (k.counter, k.last_ceremony.clone())
}

/// The key flow on one store setup.
async fn key_flow(stores: &Stores) {
    let h = Harness::builder_on(stores).policy(policy()).build();
    let (tf, events) = (&h.tf, &h.events);
    let u = fresh_user("flow-user");
    let (secret, _) = h.enroll_totp(&u).await;

    // Registration, right after the TOTP enrolment (a fresh factor).
    let mut key = SoftKey::new();
    let opts = tf
        .security_keys()
        .start_registration(&u, "Alice")
        .await
        .unwrap();
    let response = key.create(opts.as_json()).await;
    let info = tf
        .security_keys()
        .finish_registration(&u, &response, "YubiKey")
        .await
        .unwrap();
    assert_eq!(stored_key(stores, &u).await, (0, None));

    // A login with the key; the counter lands in the enrolment record.
    let c = challenge(tf, &u).await;
    assert!(c.methods().contains(&Method::SecurityKey));
    let first = key.get(&options(&c)).await;
    let v = tf
        .verify_login(LoginContext::none(), c.token(), &first)
        .await
        .unwrap();
    assert_eq!(
        (v.user(), v.method()),
        (u.as_str(), Some(Method::SecurityKey))
    );
    let (counter, ceremony) = stored_key(stores, &u).await;
    assert_eq!(counter, 1);
    assert!(ceremony.is_some());

    // A second login works and moves the counter on; the first assertion, replayed on a new
    // challenge, is refused (it signed another challenge).
    let c = challenge(tf, &u).await;
    let second = key.get(&options(&c)).await;
    tf.verify_login(LoginContext::none(), c.token(), &second)
        .await
        .unwrap();
    assert_eq!(stored_key(stores, &u).await.0, 2);
    let c = challenge(tf, &u).await;
    assert!(matches!(
        tf.verify_login(LoginContext::none(), c.token(), &first)
            .await,
        Err(Error::InvalidCode { .. })
    ));
    assert_eq!(stored_key(stores, &u).await.0, 2, "nothing recorded");

    // 16 concurrent submissions of one assertion on a new challenge: exactly one passes; the
    // others lost the race for the challenge or found its attempts spent, none charged as a
    // wrong answer nor taken for a clone (the same ceremony, not a counter going back).
    let c = challenge(tf, &u).await;
    assert!(!cloned(events));
    events.clear();
    let third = key.get(&options(&c)).await;
    let results = race(16, |_| {
        let (tf, token, third) = (tf.clone(), c.token().clone(), third.clone());
        async move { tf.verify_login(LoginContext::none(), &token, &third).await }
    })
    .await;
    let passed = results.iter().filter(|r| r.is_ok()).count();
    let capped = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TooManyAttempts)))
        .count();
    let gone = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidChallenge)))
        .count();
    println!("one assertion 16 times: {passed} passed, {gone} too late, {capped} past the cap");
    assert_eq!((passed, passed + capped + gone), (1, 16), "{results:?}");
    assert_eq!(stored_key(stores, &u).await.0, 3);
    assert!(!events
        .events()
        .iter()
        .any(|e| matches!(e, Event::CodeRejected { .. } | Event::LockedOut { .. })));

    // Step-up with the key.
    let opts = tf.security_keys().start_step_up(&u).await.unwrap();
    let assertion = key.get(opts.as_json()).await;
    assert_eq!(
        tf.account().reauthenticate(&u, &assertion).await.unwrap(),
        Method::SecurityKey
    );
    assert_eq!(stored_key(stores, &u).await.0, 4);
    assert!(matches!(
        tf.account().reauthenticate(&u, &assertion).await,
        Err(Error::NothingPending)
    ));

    // Removal with the password and a TOTP code: TOTP stays, the key is offered no more.
    tf.security_keys()
        .remove(&u, &info.id, PASSWORD, &h.totp(&secret))
        .await
        .unwrap();
    let (rec, _) = stores.1.load(&u).await.unwrap().expect("a record");
    assert!(rec.security_keys.is_empty());
    assert!(rec.totp.is_some());
    let c = challenge(tf, &u).await;
    assert!(c.methods().contains(&Method::Totp));
    assert!(!c.methods().contains(&Method::SecurityKey));
    assert!(c.security_key().is_none());

    assert!(!cloned(events));
}

/// Whether a clone signal was reported.
fn cloned(events: &RecordingEvents) -> bool {
    events
        .events()
        .iter()
        .any(|e| matches!(e, Event::SecurityKeyCloneSuspected { .. }))
}

every_store!(key_flow);
