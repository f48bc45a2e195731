//! Round trips of each flow step, counted: the stores are wrapped in a decorator that counts
//! every call, and each step's calls are compared with the budget below. On the wire too: a TCP
//! proxy counts the Redis enrolment store's round trips, and PostgreSQL's per step against the
//! budget's SQL column.
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
    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        self.counts.hit("otp.end_challenges");
        self.inner.end_challenges(user, limits, now).await
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
    let mut steps: Vec<(&'static str, BTreeMap<&'static str, u32>)> = Vec::new();
    run_steps(&tf, &clock, &mailer, "", &mut |step| match step {
        Some(name) => steps.push((name, counts.take())),
        None => drop(counts.take()),
    })
    .await;

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

    let budget = budget();
    assert_eq!(
        measured, budget,
        "{wrap:?}: round trips per step changed: update the budget and the manual's stores page"
    );
}

/// The budget each step is held to: (step, Redis round trips with enrolments elsewhere, SQL
/// round trips, Redis round trips with Redis for both stores).
fn budget() -> Vec<(&'static str, u32, u32, u32)> {
    #[cfg_attr(not(feature = "webauthn"), allow(unused_mut))]
    let mut budget: Vec<(&'static str, u32, u32, u32)> = vec![
        ("start_totp_setup", 0, 2, 2),
        // Every step that changes the user's factors ends the challenges begun before it: one
        // `end_challenges` more each (confirm_totp_setup, regenerate_backup_codes, disable,
        // confirm_email_setup, finish_security_key_registration).
        ("confirm_totp_setup", 3, 9, 6),
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
        ("regenerate_backup_codes", 3, 8, 5),
        ("disable", 5, 11, 8),
        ("start_email_setup", 2, 3, 3),
        ("confirm_email_setup", 3, 5, 5),
        ("begin_login (email user, sends a code)", 1, 2, 2),
        ("resend_code", 2, 2, 2),
        ("verify_login (email code)", 2, 2, 2),
        ("send_verification_code", 2, 2, 2),
        ("verify_registration_code", 2, 2, 2),
        ("begin_login (no factor)", 0, 1, 1),
    ];
    #[cfg(feature = "webauthn")]
    budget.extend_from_slice(security_key::BUDGET);
    budget
}

/// The steps every count runs, for users whose ids start with `p`. `mark(Some(step))` closes a
/// step; `mark(None)` drops what the set-up between two steps cost.
async fn run_steps(
    tf: &TwoFactorService,
    clock: &ManualClock,
    mailer: &RecordingMailer,
    p: &str,
    mark: &mut (dyn FnMut(Option<&'static str>) + Send),
) {
    #[cfg_attr(not(feature = "webauthn"), allow(unused_variables))]
    let [t, e, r, nobody, k] = ["t", "e", "r", "none", "k"].map(|u| format!("{p}{u}"));
    let [t_at, e_at, r_at, k_at] = [&t, &e, &r, &k].map(|u| format!("{u}@example.com"));
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

    // TOTP enrollment.
    let setup = tf.totp().start_setup(&t, &t_at).await.unwrap();
    mark(Some("start_totp_setup"));
    let secret = setup.secret_base32().to_owned();
    let backup: Vec<String> = setup
        .backup_codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    tf.totp().confirm_setup(&t, &totp(&secret)).await.unwrap();
    mark(Some("confirm_totp_setup"));
    clock.advance(Duration::from_secs(30));

    // Login with TOTP, a wrong code, a backup code.
    let ch = challenge(tf.begin_login(LoginContext::none(), &t).await.unwrap());
    mark(Some("begin_login (TOTP user)"));
    let verified = tf
        .verify_login(LoginContext::none(), ch.token(), &totp(&secret))
        .await
        .unwrap();
    mark(Some("verify_login (TOTP)"));

    // A trusted device: its login is the enrolment load and the save of its last use; a refused
    // token falls through to the challenge on the same load.
    let trust = tf.devices().trust(&verified, "laptop", None).await.unwrap();
    mark(Some("trust_device"));
    let step = tf
        .begin_login(&LoginContext::new().device(trust.token.clone()), &t)
        .await
        .unwrap();
    assert!(matches!(step, LoginStep::Complete(_)));
    mark(Some("begin_login with a device (trusted)"));
    let other =
        twofactor::account::DeviceToken::parse(&format!("tfd1_{}", "A".repeat(43))).unwrap();
    challenge(
        tf.begin_login(&LoginContext::new().device(other.clone()), &t)
            .await
            .unwrap(),
    );
    mark(Some("begin_login with a device (refused token)"));
    assert_eq!(tf.devices().revoke_all(&t).await.unwrap(), 1);
    mark(Some("revoke_devices"));
    let ch = challenge(tf.begin_login(LoginContext::none(), &t).await.unwrap());
    mark(None);
    tf.verify_login(LoginContext::none(), ch.token(), &wrong(&totp(&secret)))
        .await
        .unwrap_err();
    mark(Some("verify_login (wrong code)"));
    tf.verify_login(LoginContext::none(), ch.token(), &backup[0])
        .await
        .unwrap();
    mark(Some("verify_login (backup code)"));
    tf.account().status(&t).await.unwrap();
    mark(Some("status"));
    clock.advance(Duration::from_secs(30));
    let fresh = tf
        .backup_codes()
        .regenerate(&t, &totp(&secret))
        .await
        .unwrap();
    mark(Some("regenerate_backup_codes"));
    tf.account()
        .disable(&t, "pw", fresh[0].expose())
        .await
        .unwrap();
    mark(Some("disable"));

    // Email enrollment and login by email code.
    tf.email().start_setup(&e, &e_at).await.unwrap();
    mark(Some("start_email_setup"));
    tf.email()
        .confirm_setup(&e, &last_code(&e_at))
        .await
        .unwrap();
    mark(Some("confirm_email_setup"));
    let ch = challenge(tf.begin_login(LoginContext::none(), &e).await.unwrap());
    mark(Some("begin_login (email user, sends a code)"));
    clock.advance(Duration::from_secs(61));
    tf.resend_code(ch.token()).await.unwrap();
    mark(Some("resend_code"));
    tf.verify_login(&LoginContext::new(), ch.token(), &last_code(&e_at))
        .await
        .unwrap();
    mark(Some("verify_login (email code)"));

    // Registration code; a user without factors.
    tf.email().send_verification_code(&r, &r_at).await.unwrap();
    mark(Some("send_verification_code"));
    tf.email()
        .verify_registration_code(&r, &last_code(&r_at))
        .await
        .unwrap();
    mark(Some("verify_registration_code"));
    assert!(matches!(
        tf.begin_login(LoginContext::none(), &nobody).await.unwrap(),
        LoginStep::Complete(_)
    ));
    mark(Some("begin_login (no factor)"));

    // Security keys: a TOTP user (the set-up is not counted) registers a key, logs in and steps
    // up with it.
    #[cfg(feature = "webauthn")]
    {
        let setup = tf.totp().start_setup(&k, &k_at).await.unwrap();
        tf.totp()
            .confirm_setup(&k, &totp(setup.secret_base32()))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        mark(None);
        security_key::steps(tf, &k, mark).await;
    }
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
        // The ceremony taken, the record loaded and saved with the key, the challenges begun
        // before it ended.
        ("finish_security_key_registration", 2, 4, 4),
        ("begin_login (security key user)", 1, 2, 2),
        // The two login steps, and the key's counter checked and saved in the record (one
        // compare-and-swap: a load and a save).
        ("verify_login (security key)", 2, 4, 4),
        ("start_security_key_step_up", 1, 2, 2),
        // The record `reauthenticate` loads is where the counter's compare-and-swap starts:
        // one load and one save, and the two steps of the attempt.
        ("reauthenticate (security key)", 2, 4, 4),
    ];

    /// User `k` registers a key, logs in with it and steps up with it; `mark` closes each step.
    pub(super) async fn steps(
        tf: &TwoFactorService,
        k: &str,
        mark: &mut (dyn FnMut(Option<&'static str>) + Send),
    ) {
        let mut key = SoftKey::new();
        let opts = tf.security_keys().start_registration(k, "K").await.unwrap();
        mark(Some("start_security_key_registration"));
        let response = key.create(opts.as_json()).await;
        tf.security_keys()
            .finish_registration(k, &response, "Key")
            .await
            .unwrap();
        mark(Some("finish_security_key_registration"));
        let LoginStep::Challenge(c) = tf.begin_login(LoginContext::none(), k).await.unwrap() else {
            panic!("expected a challenge");
        };
        mark(Some("begin_login (security key user)"));
        let assertion = key.get(&options(&c)).await;
        tf.verify_login(LoginContext::none(), c.token(), &assertion)
            .await
            .unwrap();
        mark(Some("verify_login (security key)"));
        let opts = tf.security_keys().start_step_up(k).await.unwrap();
        mark(Some("start_security_key_step_up"));
        let assertion = key.get(opts.as_json()).await;
        tf.account().reauthenticate(k, &assertion).await.unwrap();
        mark(Some("reauthenticate (security key)"));
    }
}

/// A TCP proxy that counts the turns of a conversation: a request that follows a reply (or
/// opens the conversation) is one round trip, however many commands it pipelines.
#[cfg(any(feature = "redis", feature = "postgres"))]
mod wire {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Who spoke last, and how many requests followed a reply (or opened the conversation).
    #[derive(Default)]
    pub(super) struct Turns {
        server_spoke_last: bool,
        requests: u32,
        /// PostgreSQL requests that are a lone `Sync`: sqlx's check of a connection as it goes
        /// back to the pool, not a statement.
        pings: u32,
    }

    /// A PostgreSQL `Sync` message alone: what sqlx's `ping` sends.
    const PG_SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

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
                    if buf[..n] == PG_SYNC {
                        t.pings += 1;
                    } else if t.server_spoke_last {
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

    /// A proxy to `upstream` (`host:port`) on a free port: its `host:port` and the turn counter.
    pub(super) async fn proxy(upstream: String) -> (String, Arc<Mutex<Turns>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let turns = Arc::new(Mutex::new(Turns {
            server_spoke_last: true,
            ..Turns::default()
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
        (addr, turns)
    }

    pub(super) fn round_trips_since(turns: &Mutex<Turns>) -> u32 {
        std::mem::take(&mut turns.lock().unwrap().requests)
    }

    /// The lone `Sync` requests since the last call.
    #[cfg(feature = "postgres")]
    pub(super) fn pings_since(turns: &Mutex<Turns>) -> u32 {
        std::mem::take(&mut turns.lock().unwrap().pings)
    }
}

/// Round trips of `RedisEnrollmentStore` on the wire: a TCP proxy between the store and the
/// test Redis counts the turns of the conversation (a request that follows a reply), and each
/// operation, run alone, must take exactly one.
#[cfg(feature = "redis")]
mod redis_wire {
    use twofactor::{
        clock::Timestamp, store::BackupCodeRecord, store::EnrollmentRecord, store::EnrollmentStore,
    };

    use super::wire::{proxy, round_trips_since};
    use crate::support::stores;

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
                let (proxy_addr, turns) = proxy(upstream).await;
                let store =
                    twofactor::store::RedisOtpStore::builder(format!("redis://{proxy_addr}"))
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

/// The SQL column of the budget on the wire: the service on one PostgreSQL store for both
/// traits, through a proxy that counts round trips. The steps run once to fill the
/// connection's statement cache (a statement's first use adds a turn to prepare it), then again,
/// counted, and each step must take what the budget says.
#[cfg(feature = "postgres")]
mod postgres_wire {
    use std::sync::Arc;

    use twofactor::{
        clock::Timestamp, store::SqlStore, testing::ManualClock, testing::RecordingMailer,
        TwoFactorService,
    };

    use super::wire::{pings_since, proxy, round_trips_since};
    use super::{budget, run_steps};
    use crate::support::stores;

    #[test]
    fn each_step_takes_its_sql_round_trips_on_the_wire() {
        twofactor::store::conformance::run(
            "each_step_takes_its_sql_round_trips_on_the_wire",
            || async { stores::postgres_url() },
            |url| async move {
                // postgres://[user[:password]@]host:port/db: the proxy takes host:port's place.
                let (scheme, rest) = url.split_once("://").unwrap();
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                let (credentials, upstream) = match authority.rsplit_once('@') {
                    Some((c, h)) => (format!("{c}@"), h.to_owned()),
                    None => (String::new(), authority.to_owned()),
                };
                let (proxy_addr, turns) = proxy(upstream).await;
                let store = SqlStore::builder(format!(
                    "{scheme}://{credentials}{proxy_addr}/{path}?sslmode=disable"
                ))
                .schema(stores::pg_schema())
                .max_connections(1)
                .connect()
                .await
                .unwrap();
                store.migrate().await.unwrap();
                let store = Arc::new(store);
                let clock = ManualClock::new(Timestamp::from_unix_secs(2_200_000_000));
                let mailer = RecordingMailer::new();
                let builder = TwoFactorService::builder();
                #[cfg(feature = "webauthn")]
                let builder = builder.policy(super::security_key::policy());
                let tf = builder
                    .issuer("Acme")
                    .keys(twofactor::Keyring::generate())
                    .otp_store(store.clone())
                    .enrollments(store)
                    .mailer(mailer.clone())
                    .clock(clock.clone())
                    .password_verifier(|_: &str, p: &str| p == "pw")
                    .build()
                    .unwrap();
                let run = stores::random_word();
                run_steps(&tf, &clock, &mailer, &format!("warm-{run}-"), &mut |_| {}).await;
                round_trips_since(&turns);
                pings_since(&turns);
                let mut measured = Vec::new();
                run_steps(&tf, &clock, &mailer, &format!("wire-{run}-"), &mut |step| {
                    let n = round_trips_since(&turns);
                    if let Some(name) = step {
                        measured.push((name, n));
                    }
                })
                .await;
                let statements: u32 = measured.iter().map(|(_, n)| n).sum();
                let pings = pings_since(&turns);
                println!(
                    "PostgreSQL on the wire: {statements} statement round trips over {} steps, \
                     and {pings} pool checks (a lone Sync as a connection goes back to the pool); \
                     per step: {measured:?}",
                    measured.len()
                );
                let expected: Vec<(&str, u32)> = budget()
                    .into_iter()
                    .map(|(step, _, sql, _)| (step, sql))
                    .collect();
                assert_eq!(
                    measured, expected,
                    "SQL round trips on the wire differ from the budget's SQL column"
                );
            },
        );
    }
}
