//! Conformance bodies for [`RateLimiter`](crate::rate_limit::RateLimiter) and the per-client login ceiling
//! over a store: the limits hold on the store's own counters, also under concurrent hits.

use std::time::Duration;

use super::*;
use crate::error::Error;
use crate::keys::Keyring;
use crate::login::LoginStep;
use crate::policy::Policy;
use crate::rate_limit::{Limit, LoginContext};
use crate::service::TwoFactorService;
use crate::store::{EnrollmentRecord, EnrollmentStore, MemoryEnrollmentStore, TotpRecord};
use crate::testing::ManualClock;
use crate::testing::RecordingMailer;

/// A whole minute, so that windows of 60 s start at it.
const T0: u64 = 1_700_000_040;
const MINUTE: Duration = Duration::from_secs(60);

fn service<S: OtpStore>(
    store: Arc<S>,
    policy: Policy,
) -> (TwoFactorService, ManualClock, Arc<MemoryEnrollmentStore>) {
    let clock = ManualClock::new(at(T0));
    let enrollments = Arc::new(MemoryEnrollmentStore::new());
    let tf = TwoFactorService::builder()
        .issuer("Conformance")
        .keys(Keyring::generate())
        .otp_store(store)
        .enrollments(enrollments.clone())
        .mailer(RecordingMailer::new())
        .clock(clock.clone())
        .policy(policy)
        .build()
        .unwrap();
    (tf, clock, enrollments)
}

fn refused(r: Result<(), Error>) -> Duration {
    match r {
        Err(Error::RateLimited { retry_after }) => retry_after,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// A fixed window allows `max` hits per key, refuses the next until the window ends, and counts
/// each key apart.
pub async fn fixed_window_per_key<S: OtpStore>(store: Arc<S>) {
    let (tf, clock, _) = service(store, Policy::default());
    let limiter = tf.rate_limiter("ip", Limit::fixed(3, MINUTE)).unwrap();
    clock.advance(Duration::from_secs(10));
    for left in [2, 1, 0] {
        let d = limiter.check("203.0.113.7").await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, left);
    }
    assert_eq!(
        refused(limiter.hit("203.0.113.7").await),
        Duration::from_secs(50),
        "retry at the window's end"
    );
    limiter.hit("203.0.113.8").await.unwrap();
    clock.advance(Duration::from_secs(49));
    assert!(limiter.hit("203.0.113.7").await.is_err());
    clock.advance(Duration::from_secs(1));
    limiter.hit("203.0.113.7").await.unwrap();
}

/// A sliding window still counts the part of the previous window that overlaps the last
/// `window` of time, and its `retry_after` is honest: waiting it is enough, and needed.
pub async fn sliding_window_weighs_the_previous_window<S: OtpStore>(store: Arc<S>) {
    let (tf, clock, _) = service(store, Policy::default());
    let limiter = tf.rate_limiter("acct", Limit::sliding(10, MINUTE)).unwrap();
    for _ in 0..10 {
        limiter.hit("alice").await.unwrap();
    }
    assert!(limiter.hit("alice").await.is_err(), "11th in one window");
    // Half-way through the next window, 5.5 of the 11 still count: 4 more fit.
    clock.set(at(T0 + 90));
    for _ in 0..4 {
        limiter.hit("alice").await.unwrap();
    }
    let wait = refused(limiter.hit("alice").await);
    assert!(wait > Duration::ZERO && wait <= MINUTE, "{wait:?}");
    // A second before the wait is over, still refused (that refusal counts too, so wait again).
    clock.advance(wait - Duration::from_secs(1));
    let wait = refused(limiter.hit("alice").await);
    clock.advance(wait);
    limiter.hit("alice").await.unwrap();
    // A fixed window of the same name is another limiter.
    let fixed = tf.rate_limiter("acct", Limit::fixed(1, MINUTE)).unwrap();
    fixed.hit("alice").await.unwrap();
}

/// Of 64 concurrent hits on a fresh key, exactly `max` are allowed, on either kind of window.
pub async fn concurrent_hits_allow_exactly_max<S: OtpStore>(store: Arc<S>) {
    let (tf, _, _) = service(store, Policy::default());
    for limit in [Limit::fixed(10, MINUTE), Limit::sliding(10, MINUTE)] {
        let limiter = tf.rate_limiter("burst", limit).unwrap();
        let key = unique("k");
        let results = concurrently(64, |_| {
            let (limiter, key) = (limiter.clone(), key.clone());
            async move { limiter.check(&key).await.unwrap().allowed }
        })
        .await;
        assert_eq!(results.iter().filter(|a| **a).count(), 10, "{limit:?}");
    }
}

/// A hostile key (a megabyte, the text of a crate key, a key differing by one byte) is counted
/// on its own, never touches the crate's records, and leaves only short keys in the store.
pub async fn hostile_keys_are_hashed_and_apart<S: OtpStore>(store: Arc<S>) {
    let (tf, _, _) = service(Arc::clone(&store), Policy::default());
    let limiter = tf.rate_limiter("route", Limit::fixed(1, MINUTE)).unwrap();
    let huge = "x".repeat(1 << 20);
    limiter.hit(&huge).await.unwrap();
    assert!(limiter.hit(&huge).await.is_err());
    let mut other = huge.clone();
    other.push('x');
    limiter.hit(&other).await.unwrap();
    // A key that spells a store key is only a key: the record under that name is untouched.
    let crate_key = StoreKey::new(format!("tf:{{{}}}", unique("u")));
    store
        .put(&crate_key, b"record", at(T0 + 600), at(T0))
        .await
        .unwrap();
    limiter.hit(crate_key.as_str()).await.unwrap();
    assert!(limiter.hit(crate_key.as_str()).await.is_err());
    assert_eq!(
        store.get(&crate_key, at(T0)).await.unwrap().as_deref(),
        Some(&b"record"[..])
    );
    // Limiters of other names count apart.
    let second = tf.rate_limiter("route2", Limit::fixed(1, MINUTE)).unwrap();
    second.hit(&huge).await.unwrap();
}

async fn enroll_totp(enrollments: &MemoryEnrollmentStore, tf: &TwoFactorService, user: &str) {
    let secret = [7u8; 20];
    let sealed = tf.inner.keys.seal(user, &secret).unwrap();
    let mut totp = TotpRecord::new(sealed, "SHA1", 6, 30, at(T0));
    totp.confirmed_at = Some(at(T0));
    let mut rec = EnrollmentRecord::new();
    rec.totp = Some(totp);
    enrollments.save(user, &rec, None).await.unwrap();
}

/// The per-client ceiling of the login steps holds across accounts, counts `begin_login`
/// and `verify_login` together, and a refused step spends none of the challenge's or the
/// user's budget. Without a client, only the per-user limits apply.
pub async fn client_ceiling_across_accounts<S: OtpStore>(store: Arc<S>) {
    let mut policy = Policy::default();
    policy.client_login_limit = Limit::fixed(4, MINUTE);
    let (tf, clock, enrollments) = service(store, policy);
    let ip = LoginContext::new().client(unique("198.51.100.1"));
    let users: Vec<String> = (0..3).map(|i| unique(&format!("user{i}"))).collect();
    for u in &users {
        enroll_totp(&enrollments, &tf, u).await;
    }
    let mut tokens = Vec::new();
    for u in &users {
        match tf.begin_login(&ip, u).await.unwrap() {
            LoginStep::Challenge(c) => tokens.push(c.token().clone()),
            LoginStep::Complete(_) => panic!("{u} has a factor"),
        }
    }
    // The 4th step of this client, on another account's challenge: allowed (a wrong code).
    assert!(matches!(
        tf.verify_login(&ip, &tokens[0], "000000").await,
        Err(Error::InvalidCode { .. })
    ));
    // The 5th is refused, whichever account and step.
    assert!(matches!(
        tf.verify_login(&ip, &tokens[1], "000000").await,
        Err(Error::RateLimited { .. })
    ));
    assert!(matches!(
        tf.begin_login(&ip, &users[2]).await,
        Err(Error::RateLimited { .. })
    ));
    // The refused attempt spent nothing: challenge 1 still has its whole budget.
    for _ in 0..tf.policy().challenge_max_attempts - 1 {
        assert!(matches!(
            tf.verify_login(&LoginContext::new(), &tokens[1], "000000")
                .await,
            Err(Error::InvalidCode { .. })
        ));
    }
    assert!(matches!(
        tf.verify_login(&LoginContext::new(), &tokens[1], "000000")
            .await,
        Err(Error::InvalidCode { .. })
    ));
    // Another client, and no client, are not held by this one's ceiling.
    let other = LoginContext::new().client(unique("198.51.100.2"));
    assert!(tf.begin_login(&other, &users[2]).await.is_ok());
    assert!(tf
        .begin_login(&LoginContext::new(), &users[2])
        .await
        .is_ok());
    clock.advance(MINUTE);
    assert!(tf.begin_login(&ip, &users[2]).await.is_ok());
}
