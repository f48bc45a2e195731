//! `RedisOtpStore` on a real Redis Cluster (feature `redis-cluster`; seeds from
//! `TWOFACTOR_TEST_REDIS_CLUSTER_URLS`, started by `.ci/redis-cluster.sh`): the conformance
//! suite, the concurrency invariants of a login, and the spread of users over the masters.
//! The login flows run in `store_flows`; a resharding under load in `tests/cluster_reshard.rs`.

use std::sync::Arc;
use twofactor::LoginContext;

use twofactor::{store::MemoryEnrollmentStore, Error};

use crate::support::{race, stores, wrong, Harness};

mod otp {
    use crate::support::stores::redis_cluster_store;
    twofactor::otp_store_tests!(redis_cluster_store);
}

/// The Redis enrolment store on the same cluster connection.
mod enrollment {
    twofactor::enrollment_store_tests!(|| async {
        Some(
            crate::support::stores::redis_cluster_store()
                .await?
                .enrollment_store(),
        )
    });
}

/// A service on a cluster store (its own prefix) and memory enrolments; `None` to skip.
async fn service() -> Option<(
    Harness<twofactor::store::RedisOtpStore, MemoryEnrollmentStore>,
    twofactor::store::RedisOtpStore,
)> {
    let store = stores::redis_cluster_store().await?;
    let svc = Harness::on(
        Arc::new(store.clone()),
        Arc::new(MemoryEnrollmentStore::new()),
    );
    Some((svc, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_submissions_of_one_code_on_one_challenge_pass_once() {
    let Some((svc, _)) = service().await else {
        return;
    };
    let u = "cluster-once";
    let (secret, _) = svc.enroll_totp(u).await;
    let ch = svc.challenge_retrying(u).await;
    let (token, code) = (ch.token().clone(), svc.totp(&secret));
    let tf = svc.tf.clone();
    let results = race(64, |_| {
        let (tf, token, code) = (tf.clone(), token.clone(), code.clone());
        async move { tf.verify_login(LoginContext::none(), &token, &code).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::InvalidChallenge | Error::CodeReused | Error::TooManyAttempts)
            )
        })
        .count();
    println!("cluster: 64 concurrent submissions of one code: {ok} accepted, {refused} refused");
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(refused, 63, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_wrong_guesses_evaluate_exactly_the_cap() {
    let Some((svc, _)) = service().await else {
        return;
    };
    let u = "cluster-guesses";
    let (secret, _) = svc.enroll_totp(u).await;
    let ch = svc.challenge_retrying(u).await;
    let (token, bad) = (ch.token().clone(), wrong(&svc.totp(&secret)));
    let tf = svc.tf.clone();
    let results = race(64, |_| {
        let (tf, token, bad) = (tf.clone(), token.clone(), bad.clone());
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
    let cap = svc.tf.policy().challenge_max_attempts as usize;
    println!("cluster: 64 concurrent wrong guesses: {evaluated} evaluated, {refused} refused");
    assert_eq!(evaluated, cap);
    assert_eq!(refused, 64 - cap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockout_holds_across_challenges() {
    let Some((svc, _)) = service().await else {
        return;
    };
    let u = "cluster-lockout";
    let (secret, _) = svc.enroll_totp(u).await;
    let bad = wrong(&svc.totp(&secret));
    let mut tokens = Vec::new();
    for _ in 0..100 {
        tokens.push(svc.challenge_retrying(u).await.token().clone());
    }
    let tf = svc.tf.clone();
    let results = race(100, |i| {
        let (tf, token, bad) = (tf.clone(), tokens[i].clone(), bad.clone());
        async move { tf.verify_login(LoginContext::none(), &token, &bad).await }
    })
    .await;
    let evaluated = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidCode { .. })))
        .count();
    let threshold = svc.tf.policy().lockout_threshold as usize;
    println!("cluster: 100 concurrent guesses on 100 challenges: {evaluated} evaluated");
    assert_eq!(evaluated, threshold);
    assert!(matches!(
        svc.tf.begin_login(LoginContext::none(), u).await,
        Err(Error::Locked { .. })
    ));
    // No new challenge while locked, and the right code is refused on every challenge still
    // open from before the lock.
    let ch = svc.tf.begin_login(LoginContext::none(), u).await;
    assert!(matches!(ch, Err(Error::Locked { .. })), "{ch:?}");
    let right = svc.totp(&secret);
    for token in &tokens {
        let r = svc
            .tf
            .verify_login(LoginContext::none(), token, &right)
            .await;
        assert!(matches!(r, Err(Error::Locked { .. })), "{r:?}");
    }
}

/// The masters of the cluster: (address, node id, slot ranges), from `CLUSTER NODES`.
pub(crate) async fn masters(seed: &str) -> Vec<(String, String, String)> {
    let mut conn = redis::Client::open(seed)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out: Vec<(String, String, String)> = nodes
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|f| f.contains("master"))
        })
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = f[1].split('@').next().unwrap().to_owned();
            (addr, f[0].to_owned(), f[8..].join(" "))
        })
        .collect();
    out.sort();
    out
}

/// Users' records land on every master: the keys of 48 users, counted per master.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_spread_over_all_masters() {
    let Some((svc, store)) = service().await else {
        return;
    };
    for i in 0..48 {
        svc.enroll_totp(&format!("cluster-spread-{i}")).await;
    }
    let seed = stores::redis_cluster_urls().unwrap().remove(0);
    let masters = masters(&seed).await;
    assert_eq!(masters.len(), 3, "{masters:?}");
    let mut counts = Vec::new();
    for (addr, _, slots) in &masters {
        let mut conn = redis::Client::open(format!("redis://{addr}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", store.prefix()))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        println!(
            "cluster: master {addr} (slots {slots}): {} of the 48 users' records",
            keys.len()
        );
        counts.push(keys.len());
    }
    assert_eq!(counts.iter().sum::<usize>(), 48, "one record per user");
    assert!(
        counts.iter().all(|&n| n > 0),
        "every master holds users: {counts:?}"
    );
}
