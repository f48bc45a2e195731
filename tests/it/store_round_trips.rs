//! Round trips of each flow step, counted: the stores are wrapped in a decorator that counts
//! every call, and each step's calls are compared with the budget below.
//!
//! Every `OtpStore` call is one round trip on Redis (one command or one script) and one
//! statement (or one transaction on one connection) on SQL; the composite operations are counted
//! as the one call each native store makes of them. Every `EnrollmentStore` call is one statement
//! on SQL, except `replace_backup_codes` and `remove`, which are one transaction (four round trips),
//! and one round trip on Redis (`RedisEnrollmentStore`: one command, one script or one `MULTI`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofactor::LoginContext;

use async_trait::async_trait;
use twofactor::store::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement, UserLimits,
    UserState,
};
use twofactor::{
    clock::Timestamp, error::StoreError, store::BackupCodeRecord, store::EnrollmentRecord,
    store::EnrollmentStore, store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore,
    store::Revision, store::StoreKey, testing::ManualClock, testing::RecordingMailer,
    totp::totp_code, totp::TotpParams, totp::TotpSecret, LoginStep, TwoFactorService,
};

use crate::support::{code_in, wrong};

/// Calls per store method since the last reset.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<&'static str, u32>>);

impl Counts {
    fn hit(&self, method: &'static str) {
        *self.0.lock().unwrap().entry(method).or_default() += 1;
    }

    fn take(&self) -> BTreeMap<&'static str, u32> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Counts every call, then passes it on.
struct Counting<S: ?Sized> {
    inner: Arc<S>,
    counts: Arc<Counts>,
}

#[async_trait]
impl OtpStore for Counting<dyn OtpStore> {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.counts.hit("otp.put");
        self.inner.put(key, value, expires_at, now).await
    }
    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.counts.hit("otp.put_if_absent");
        self.inner.put_if_absent(key, value, expires_at, now).await
    }
    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        self.counts.hit("otp.get");
        self.inner.get(key, now).await
    }
    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        self.counts.hit("otp.take");
        self.inner.take(key, now).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.counts.hit("otp.delete");
        self.inner.delete(key).await
    }
    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.counts.hit("otp.increment");
        self.inner.increment(key, expires_at, now).await
    }
    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.counts.hit("otp.advance");
        self.inner.advance(key, value, expires_at, now).await
    }
    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        self.counts.hit("otp.begin_challenge");
        self.inner.begin_challenge(new, now).await
    }
    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        self.counts.hit("otp.reserve_send");
        self.inner.reserve_send(user, challenge, spec, now).await
    }
    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.counts.hit("otp.store_code");
        self.inner.store_code(key, create, code, now).await
    }
    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        self.counts.hit("otp.open_attempt");
        self.inner.open_attempt(spec, now).await
    }
    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        self.counts.hit("otp.settle");
        self.inner.settle(settlement, now).await
    }
    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        self.counts.hit("otp.user_state");
        self.inner.user_state(user, limits, now).await
    }
}

#[async_trait]
impl EnrollmentStore for Counting<dyn EnrollmentStore> {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        self.counts.hit("enr.load");
        self.inner.load(user).await
    }
    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        self.counts.hit("enr.save");
        self.inner.save(user, record, expected).await
    }
    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        self.counts.hit("enr.remove");
        self.inner.remove(user).await
    }
    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.counts.hit("enr.replace_backup_codes");
        self.inner.replace_backup_codes(user, codes, now).await
    }
    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        self.counts.hit("enr.find_backup_code");
        self.inner.find_backup_code(user, lookup).await
    }
    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.counts.hit("enr.consume_backup_code");
        self.inner.consume_backup_code(user, lookup, now).await
    }
    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        self.counts.hit("enr.backup_codes_remaining");
        self.inner.backup_codes_remaining(user).await
    }
    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        self.counts.hit("enr.load_with_codes");
        self.inner.load_with_codes(user).await
    }
    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        self.counts.hit("enr.redeem_backup_code");
        self.inner.redeem_backup_code(user, lookup, now).await
    }
}

/// Round trips of one step on Redis for the short-lived state (OTP calls), on SQL (every call;
/// a transaction is 4), and on Redis for both stores (every call: each `RedisEnrollmentStore`
/// operation is one command, one script or one `MULTI`).
fn round_trips(calls: &BTreeMap<&'static str, u32>) -> (u32, u32, u32) {
    let otp: u32 = calls
        .iter()
        .filter(|(m, _)| m.starts_with("otp."))
        .map(|(_, n)| n)
        .sum();
    let sql: u32 = calls
        .iter()
        .map(|(m, n)| match *m {
            "enr.replace_backup_codes" | "enr.remove" => 4 * n,
            _ => *n,
        })
        .sum();
    let all: u32 = calls.values().sum();
    (otp, sql, all)
}

/// How the counted stores are handed to the builder.
#[derive(Clone, Copy, Debug)]
enum Wrap {
    /// The stores themselves.
    Direct,
    /// Each in an `Arc`.
    Arc,
    /// Each as a `Box<dyn …>`.
    Box,
}

#[tokio::test]
async fn round_trips_per_flow_step() {
    check_round_trips(Wrap::Direct).await;
}

/// `Arc<S>` and `Box<S>` forward every call to the store inside, the composite operations
/// included: a wrapped store keeps its own single-call implementations and its round-trip count
/// (a wrapper that fell back to the defaults would show primitive calls here instead).
#[tokio::test]
async fn a_store_in_an_arc_or_a_box_keeps_its_round_trips() {
    check_round_trips(Wrap::Arc).await;
    check_round_trips(Wrap::Box).await;
}

async fn check_round_trips(wrap: Wrap) {
    let counts = Arc::new(Counts::default());
    let otp = Counting {
        inner: Arc::new(MemoryOtpStore::new()) as Arc<dyn OtpStore>,
        counts: counts.clone(),
    };
    let enr = Counting {
        inner: Arc::new(MemoryEnrollmentStore::new()) as Arc<dyn EnrollmentStore>,
        counts: counts.clone(),
    };
    let clock = ManualClock::new(Timestamp::from_unix_secs(2_200_000_000));
    let mailer = RecordingMailer::new();
    let builder = TwoFactorService::builder();
    let builder = match wrap {
        Wrap::Direct => builder.otp_store(otp).enrollments(enr),
        Wrap::Arc => builder.otp_store(Arc::new(otp)).enrollments(Arc::new(enr)),
        Wrap::Box => builder
            .otp_store(Box::new(otp) as Box<dyn OtpStore>)
            .enrollments(Box::new(enr) as Box<dyn EnrollmentStore>),
    };
    // With the webauthn feature, security keys are configured: the steps of users without a
    // key must cost the same as without them.
    #[cfg(feature = "webauthn")]
    let builder = builder.policy(security_key::policy());
    let tf = builder
        .issuer("Acme")
        .keys(twofactor::Keyring::generate())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .password_verifier(|_: &str, p: &str| p == "pw")
        .build()
        .unwrap();
    let totp = |secret: &str| {
        use twofactor::clock::Clock;
        let s = TotpSecret::from_base32(secret).unwrap();
        totp_code(
            s.as_bytes(),
            TotpParams::default(),
            clock.now().as_unix_secs(),
        )
    };
    let last_code = |to: &str| code_in(&mailer.last_to(to).unwrap().text).unwrap();
    let challenge = |step: LoginStep| match step {
        LoginStep::Challenge(c) => c,
        LoginStep::Complete(_) => panic!("expected a challenge"),
    };

    let mut steps: Vec<(&'static str, BTreeMap<&'static str, u32>)> = Vec::new();
    let mut record = |name: &'static str| steps.push((name, counts.take()));

    // TOTP enrollment.
    let setup = tf.totp().start_setup("t", "t@example.com").await.unwrap();
    record("start_totp_setup");
    let secret = setup.secret_base32().to_owned();
    let backup: Vec<String> = setup
        .backup_codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    tf.totp().confirm_setup("t", &totp(&secret)).await.unwrap();
    record("confirm_totp_setup");
    clock.advance(Duration::from_secs(30));

    // Login with TOTP, a wrong code, a backup code.
    let ch = challenge(tf.begin_login(LoginContext::none(), "t").await.unwrap());
    record("begin_login (TOTP user)");
    let verified = tf
        .verify_login(LoginContext::none(), ch.token(), &totp(&secret))
        .await
        .unwrap();
    record("verify_login (TOTP)");

    // A trusted device: its login is the enrolment load and the save of its last use; a refused
    // token falls through to the challenge on the same load.
    let trust = tf.devices().trust(&verified, "laptop", None).await.unwrap();
    record("trust_device");
    let step = tf
        .begin_login(&LoginContext::new().device(trust.token.clone()), "t")
        .await
        .unwrap();
    assert!(matches!(step, LoginStep::Complete(_)));
    record("begin_login with a device (trusted)");
    let other =
        twofactor::account::DeviceToken::parse(&format!("tfd1_{}", "A".repeat(43))).unwrap();
    challenge(
        tf.begin_login(&LoginContext::new().device(other.clone()), "t")
            .await
            .unwrap(),
    );
    record("begin_login with a device (refused token)");
    assert_eq!(tf.devices().revoke_all("t").await.unwrap(), 1);
    record("revoke_devices");
    let ch = challenge(tf.begin_login(LoginContext::none(), "t").await.unwrap());
    counts.take();
    tf.verify_login(LoginContext::none(), ch.token(), &wrong(&totp(&secret)))
        .await
        .unwrap_err();
    record("verify_login (wrong code)");
    tf.verify_login(LoginContext::none(), ch.token(), &backup[0])
        .await
        .unwrap();
    record("verify_login (backup code)");
    tf.account().status("t").await.unwrap();
    record("status");
    clock.advance(Duration::from_secs(30));
    let fresh = tf
        .backup_codes()
        .regenerate("t", &totp(&secret))
        .await
        .unwrap();
    record("regenerate_backup_codes");
    tf.account()
        .disable("t", "pw", fresh[0].expose())
        .await
        .unwrap();
    record("disable");

    // Email enrollment and login by email code.
    tf.email().start_setup("e", "e@example.com").await.unwrap();
    record("start_email_setup");
    tf.email()
        .confirm_setup("e", &last_code("e@example.com"))
        .await
        .unwrap();
    record("confirm_email_setup");
    let ch = challenge(tf.begin_login(LoginContext::none(), "e").await.unwrap());
    record("begin_login (email user, sends a code)");
    clock.advance(Duration::from_secs(61));
    tf.resend_code(ch.token()).await.unwrap();
    record("resend_code");
    tf.verify_login(
        &LoginContext::new(),
        ch.token(),
        &last_code("e@example.com"),
    )
    .await
    .unwrap();
    record("verify_login (email code)");

    // Registration code; a user without factors.
    tf.email()
        .send_verification_code("r", "r@example.com")
        .await
        .unwrap();
    record("send_verification_code");
    tf.email()
        .verify_registration_code("r", &last_code("r@example.com"))
        .await
        .unwrap();
    record("verify_registration_code");
    assert!(matches!(
        tf.begin_login(LoginContext::none(), "none").await.unwrap(),
        LoginStep::Complete(_)
    ));
    record("begin_login (no factor)");

    // Security keys: a TOTP user (the set-up is not counted) registers a key, logs in and steps
    // up with it.
    #[cfg(feature = "webauthn")]
    {
        let setup = tf.totp().start_setup("k", "k@example.com").await.unwrap();
        tf.totp()
            .confirm_setup("k", &totp(setup.secret_base32()))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        counts.take();
        security_key::steps(&tf, &mut record).await;
    }

    println!("{wrap:?}:");
    println!(
        "| step | store calls | Redis round trips | SQL round trips | Redis for both stores |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut measured = Vec::new();
    for (name, calls) in &steps {
        let (redis, sql, both) = round_trips(calls);
        let detail: Vec<String> = calls.iter().map(|(m, n)| format!("{m}×{n}")).collect();
        println!(
            "| {name} | {} | {redis} | {sql} | {both} |",
            detail.join(", ")
        );
        measured.push((*name, redis, sql, both));
    }

    // (step, Redis round trips with enrolments elsewhere, SQL round trips, Redis round trips
    // with Redis for both stores): the budget each step is held to.
    #[cfg_attr(not(feature = "webauthn"), allow(unused_mut))]
    let mut budget: Vec<(&str, u32, u32, u32)> = vec![
        ("start_totp_setup", 0, 2, 2),
        ("confirm_totp_setup", 2, 8, 5),
        ("begin_login (TOTP user)", 1, 2, 2),
        ("verify_login (TOTP)", 2, 2, 2),
        ("trust_device", 0, 2, 2),
        ("begin_login with a device (trusted)", 0, 2, 2),
        ("begin_login with a device (refused token)", 1, 2, 2),
        ("revoke_devices", 0, 2, 2),
        ("verify_login (wrong code)", 1, 1, 1),
        // The backup code lives in the enrolment store: one redeem there, beside the two steps.
        ("verify_login (backup code)", 2, 3, 3),
        ("status", 1, 2, 2),
        ("regenerate_backup_codes", 2, 7, 4),
        ("disable", 4, 10, 7),
        ("start_email_setup", 2, 3, 3),
        ("confirm_email_setup", 2, 4, 4),
        ("begin_login (email user, sends a code)", 1, 2, 2),
        ("resend_code", 2, 2, 2),
        ("verify_login (email code)", 2, 2, 2),
        ("send_verification_code", 2, 2, 2),
        ("verify_registration_code", 2, 2, 2),
        ("begin_login (no factor)", 0, 1, 1),
    ];
    #[cfg(feature = "webauthn")]
    budget.extend_from_slice(security_key::BUDGET);
    assert_eq!(
        measured, budget,
        "{wrap:?}: round trips per step changed: update the budget and the manual's stores page"
    );
}

/// The security-key steps, with their budget (columns as in the table above).
#[cfg(feature = "webauthn")]
mod security_key {
    use twofactor::{LoginContext, LoginStep, TwoFactorService};

    pub(super) use crate::support::authenticator::policy;
    use crate::support::authenticator::{options, SoftKey};

    pub(super) const BUDGET: &[(&str, u32, u32, u32)] = &[
        // The record, the user's last verification (a fresh factor), the ceremony put.
        ("start_security_key_registration", 2, 3, 3),
        // The ceremony taken, the record loaded and saved with the key.
        ("finish_security_key_registration", 1, 3, 3),
        ("begin_login (security key user)", 1, 2, 2),
        // The two login steps, and the key's counter checked and saved in the record (one
        // compare-and-swap: a load and a save).
        ("verify_login (security key)", 2, 4, 4),
        ("start_security_key_step_up", 1, 2, 2),
        // The record `reauthenticate` loads is where the counter's compare-and-swap starts:
        // one load and one save, and the two steps of the attempt.
        ("reauthenticate (security key)", 2, 4, 4),
    ];

    /// User `k` registers a key, logs in with it and steps up with it; `record` closes each step.
    pub(super) async fn steps(tf: &TwoFactorService, record: &mut impl FnMut(&'static str)) {
        let mut key = SoftKey::new();
        let opts = tf
            .security_keys()
            .start_registration("k", "K")
            .await
            .unwrap();
        record("start_security_key_registration");
        let response = key.create(opts.as_json()).await;
        tf.security_keys()
            .finish_registration("k", &response, "Key")
            .await
            .unwrap();
        record("finish_security_key_registration");
        let LoginStep::Challenge(c) = tf.begin_login(LoginContext::none(), "k").await.unwrap()
        else {
            panic!("expected a challenge");
        };
        record("begin_login (security key user)");
        let assertion = key.get(&options(&c)).await;
        tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await
            .unwrap();
        record("verify_login (security key)");
        let opts = tf.security_keys().start_step_up("k").await.unwrap();
        record("start_security_key_step_up");
        let assertion = key.get(opts.as_json()).await;
        tf.account().reauthenticate("k", &assertion).await.unwrap();
        record("reauthenticate (security key)");
    }
}

/// Round trips of `RedisEnrollmentStore` on the wire: a TCP proxy between the store and the
/// test Redis counts the turns of the conversation (a request that follows a reply), and each
/// operation, run alone, must take exactly one.
#[cfg(feature = "redis")]
mod redis_wire {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use twofactor::{
        clock::Timestamp, store::BackupCodeRecord, store::EnrollmentRecord, store::EnrollmentStore,
    };

    use crate::support::stores;

    /// Who spoke last, and how many requests followed a reply (or opened the conversation).
    #[derive(Default)]
    struct Turns {
        server_spoke_last: bool,
        requests: u32,
    }

    /// Copies `from` to `to`, noting each chunk in `turns`.
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        turns: Arc<Mutex<Turns>>,
        from_client: bool,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            {
                let mut t = turns.lock().unwrap();
                if from_client {
                    if t.server_spoke_last {
                        t.requests += 1;
                    }
                    t.server_spoke_last = false;
                } else {
                    t.server_spoke_last = true;
                }
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    /// A proxy to the test Redis on a free port: its URL and the turn counter.
    async fn proxy(upstream: String) -> (String, Arc<Mutex<Turns>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let turns = Arc::new(Mutex::new(Turns {
            server_spoke_last: true,
            requests: 0,
        }));
        let t = turns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, t.clone(), true));
                tokio::spawn(pipe(sr, cw, t.clone(), false));
            }
        });
        (url, turns)
    }

    fn round_trips_since(turns: &Mutex<Turns>) -> u32 {
        std::mem::take(&mut turns.lock().unwrap().requests)
    }

    #[test]
    fn every_enrollment_operation_is_one_round_trip() {
        twofactor::store::conformance::run(
            "every_enrollment_operation_is_one_round_trip",
            || async { stores::redis_url() },
            |url| async move {
                // host:port of redis://[user:password@]host:port[/db]
                let rest = url.trim_start_matches("redis://");
                let rest = rest.rsplit('@').next().unwrap();
                let upstream = rest.split('/').next().unwrap().to_owned();
                let (proxy_url, turns) = proxy(upstream).await;
                let store = twofactor::store::RedisOtpStore::builder(proxy_url)
                    .prefix(stores::redis_prefix())
                    .connect()
                    .await
                    .unwrap()
                    .enrollment_store();
                let now = Timestamp::from_unix_secs(100);
                let codes: Vec<BackupCodeRecord> = (0..10u8)
                    .map(|i| BackupCodeRecord::new(vec![i; 32], Some(format!("$argon2id${i}"))))
                    .collect();
                let record = EnrollmentRecord::new();
                // Load both scripts into Redis' cache first (a cold EVALSHA takes a second turn).
                let warm = format!("warm-{}", stores::random_word());
                let rev = store.save(&warm, &record, None).await.unwrap().unwrap();
                store.remove(&warm).await.unwrap();
                assert_eq!(store.save(&warm, &record, Some(rev)).await.unwrap(), None);

                let u = format!("user-{}", stores::random_word());
                round_trips_since(&turns);
                store.load(&u).await.unwrap();
                store.backup_codes_remaining(&u).await.unwrap();
                assert_eq!(round_trips_since(&turns), 2, "the proxy counts each call");
                let mut measured = Vec::new();
                let mut count = |op: &'static str| measured.push((op, round_trips_since(&turns)));
                round_trips_since(&turns);
                store.load(&u).await.unwrap();
                count("load");
                let rev = store.save(&u, &record, None).await.unwrap().unwrap();
                count("save");
                assert_eq!(store.save(&u, &record, None).await.unwrap(), None);
                count("save (stale)");
                store.save(&u, &record, Some(rev)).await.unwrap().unwrap();
                count("save (update)");
                store.replace_backup_codes(&u, &codes, now).await.unwrap();
                count("replace_backup_codes");
                store.find_backup_code(&u, &codes[0].lookup).await.unwrap();
                count("find_backup_code");
                assert!(store
                    .consume_backup_code(&u, &codes[0].lookup, now)
                    .await
                    .unwrap());
                count("consume_backup_code");
                store.backup_codes_remaining(&u).await.unwrap();
                count("backup_codes_remaining");
                assert_eq!(store.load_with_codes(&u).await.unwrap().1, 9);
                count("load_with_codes");
                assert_eq!(
                    store
                        .redeem_backup_code(&u, &codes[1].lookup, now)
                        .await
                        .unwrap(),
                    Some(8)
                );
                count("redeem_backup_code");
                assert_eq!(
                    store
                        .redeem_backup_code(&u, &codes[1].lookup, now)
                        .await
                        .unwrap(),
                    None
                );
                count("redeem_backup_code (spent)");
                store.remove(&u).await.unwrap();
                count("remove");
                println!("{measured:?}");
                assert_eq!(measured.len(), 12);
                for (op, n) in measured {
                    assert_eq!(n, 1, "{op}: {n} round trips");
                }
            },
        );
    }
}
