//! Concurrent submissions: attempts counted atomically before comparing; every code, backup code,
//! TOTP step and challenge accepted at most once.

use twofactor::LoginContext;
use twofactor::{Error, Method};

use crate::support::{race, wrong, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_wrong_guesses_on_one_challenge_evaluate_exactly_five() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let ch = h.challenge("u1").await;
    let bad = wrong(&h.totp(&secret));
    let token = ch.token().clone();
    let tf = h.tf.clone();
    let results = race(64, |_| {
        let tf = tf.clone();
        let token = token.clone();
        let bad = bad.clone();
        async move { tf.verify_login(LoginContext::none(), &token, &bad).await }
    })
    .await;
    let evaluated = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidCode { .. })))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TooManyAttempts | Error::InvalidChallenge)))
        .count();
    println!("64 concurrent wrong guesses: {evaluated} evaluated, {refused} refused");
    assert_eq!(evaluated, 5);
    assert_eq!(refused, 59);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_totp_code_submitted_64_times_succeeds_once() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    h.advance(30);
    let code = h.totp(&secret);
    // 64 separate challenges (so the challenge limit is not what stops them): only the TOTP
    // step's single use does.
    let mut tokens = Vec::new();
    for _ in 0..64 {
        tokens.push(h.challenge("u1").await.token().clone());
    }
    let tf = h.tf.clone();
    let results = race(64, |i| {
        let tf = tf.clone();
        let token = tokens[i].clone();
        let code = code.clone();
        async move { tf.verify_login(LoginContext::none(), &token, &code).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let replays = results
        .iter()
        .filter(|r| matches!(r, Err(Error::CodeReused)))
        .count();
    let locked = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Locked { .. })))
        .count();
    // The lock set by the tenth failure ends every challenge of the user: a pass settled after
    // it finds its challenge gone.
    let ended = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidChallenge)))
        .count();
    println!(
        "64 concurrent TOTP submissions: {ok} accepted, {replays} replays refused, \
         {locked} refused by the per-user ceiling, {ended} ended by the lock"
    );
    assert_eq!(ok, 1);
    // Every other submission was refused: as a replay, (past the per-user ceiling of ten
    // evaluations) without being evaluated at all, or on a challenge the lock ended.
    assert_eq!(ok + replays + locked + ended, 64, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_backup_code_submitted_32_times_succeeds_once() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("u1").await;
    let mut tokens = Vec::new();
    for _ in 0..32 {
        tokens.push(h.challenge("u1").await.token().clone());
    }
    let tf = h.tf.clone();
    let code = codes[0].clone();
    let results = race(32, |i| {
        let tf = tf.clone();
        let token = tokens[i].clone();
        let code = code.clone();
        async move { tf.verify_login(LoginContext::none(), &token, &code).await }
    })
    .await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    println!(
        "32 concurrent backup-code submissions: {} accepted",
        ok.len()
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].method(), Some(Method::BackupCode));
    assert_eq!(
        h.tf.account()
            .status("u1")
            .await
            .unwrap()
            .backup_codes_remaining,
        9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_email_code_submitted_32_times_succeeds_once() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    let ch = h.challenge("u1").await;
    let code = h.last_code("alice@example.com");
    let token = ch.token().clone();
    let tf = h.tf.clone();
    let results = race(32, |_| {
        let tf = tf.clone();
        let token = token.clone();
        let code = code.clone();
        async move { tf.verify_login(LoginContext::none(), &token, &code).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("32 concurrent email-code submissions: {ok} accepted");
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_registration_code_submitted_32_times_succeeds_once() {
    let h = Harness::new();
    h.tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let code = h.last_code("alice@example.com");
    let tf = h.tf.clone();
    let results = race(32, |_| {
        let tf = tf.clone();
        let code = code.clone();
        async move { tf.email().verify_registration_code("u1", &code).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_resends_send_one_mail() {
    let h = Harness::new();
    h.enroll_email("u1", "alice@example.com").await;
    let ch = h.challenge("u1").await;
    h.advance(60);
    h.mailer.clear();
    let token = ch.token().clone();
    let tf = h.tf.clone();
    let results = race(50, |_| {
        let tf = tf.clone();
        let token = token.clone();
        async move { tf.resend_code(&token).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(h.mailer.messages().len(), 1);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| matches!(r, Err(Error::Cooldown { .. }))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_user_ceiling_holds_under_concurrency_across_challenges() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("u1").await;
    let bad = wrong(&h.totp(&secret));
    let mut tokens = Vec::new();
    for _ in 0..100 {
        tokens.push(h.challenge("u1").await.token().clone());
    }
    let tf = h.tf.clone();
    let results = race(100, |i| {
        let tf = tf.clone();
        let token = tokens[i].clone();
        let bad = bad.clone();
        async move { tf.verify_login(LoginContext::none(), &token, &bad).await }
    })
    .await;
    let evaluated = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidCode { .. })))
        .count();
    println!("100 concurrent guesses on 100 challenges: {evaluated} evaluated");
    assert_eq!(evaluated, 10);
    assert!(matches!(
        h.tf.begin_login(LoginContext::none(), "u1").await,
        Err(Error::Locked { .. })
    ));
}
