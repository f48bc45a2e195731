//! Round trips of each flow step, counted: the stores are wrapped in a decorator that counts
//! every call, and each step's calls are compared with the budget below.
//!
//! Every `OtpStore` call is one round trip on Redis (one command or one script) and one
//! statement (or one transaction on one connection) on SQL; the composite operations are counted
//! as the one call each native store makes of them. Every `EnrollmentStore` call is one statement
//! on SQL, except `replace_backup_codes` and `remove`, which are one transaction (four round trips).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use twofactor::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement, UserLimits,
    UserState,
};
use twofactor::{
    totp_code, BackupCodeRecord, EnrollmentRecord, EnrollmentStore, LoginStep, ManualClock,
    MemoryEnrollmentStore, MemoryOtpStore, OtpStore, RecordingMailer, Revision, StoreError,
    StoreKey, Timestamp, TotpParams, TotpSecret, TwoFactorService,
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

/// Round trips of one step on Redis (OTP calls) and on SQL (every call; a transaction is 4).
fn round_trips(calls: &BTreeMap<&'static str, u32>) -> (u32, u32) {
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
    (otp, sql)
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
    let tf = builder
        .issuer("Acme")
        .keys(twofactor::Keyring::generate())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .password_verifier(|_: &str, p: &str| p == "pw")
        .build()
        .unwrap();
    let totp = |secret: &str| {
        use twofactor::Clock;
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
    let setup = tf.start_totp_setup("t", "t@example.com").await.unwrap();
    record("start_totp_setup");
    let secret = setup.secret_base32().to_owned();
    let backup: Vec<String> = setup
        .backup_codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    tf.confirm_totp_setup("t", &totp(&secret)).await.unwrap();
    record("confirm_totp_setup");
    clock.advance(Duration::from_secs(30));

    // Login with TOTP, a wrong code, a backup code.
    let ch = challenge(tf.begin_login("t").await.unwrap());
    record("begin_login (TOTP user)");
    tf.verify_login(ch.token(), &totp(&secret)).await.unwrap();
    record("verify_login (TOTP)");
    let ch = challenge(tf.begin_login("t").await.unwrap());
    counts.take();
    tf.verify_login(ch.token(), &wrong(&totp(&secret)))
        .await
        .unwrap_err();
    record("verify_login (wrong code)");
    tf.verify_login(ch.token(), &backup[0]).await.unwrap();
    record("verify_login (backup code)");
    tf.status("t").await.unwrap();
    record("status");
    clock.advance(Duration::from_secs(30));
    let fresh = tf
        .regenerate_backup_codes("t", &totp(&secret))
        .await
        .unwrap();
    record("regenerate_backup_codes");
    tf.disable("t", "pw", fresh[0].expose()).await.unwrap();
    record("disable");

    // Email enrollment and login by email code.
    tf.start_email_setup("e", "e@example.com").await.unwrap();
    record("start_email_setup");
    tf.confirm_email_setup("e", &last_code("e@example.com"))
        .await
        .unwrap();
    record("confirm_email_setup");
    let ch = challenge(tf.begin_login("e").await.unwrap());
    record("begin_login (email user, sends a code)");
    clock.advance(Duration::from_secs(61));
    tf.resend_code(ch.token()).await.unwrap();
    record("resend_code");
    tf.verify_login(ch.token(), &last_code("e@example.com"))
        .await
        .unwrap();
    record("verify_login (email code)");

    // Registration code; a user without factors.
    tf.send_verification_code("r", "r@example.com")
        .await
        .unwrap();
    record("send_verification_code");
    tf.verify_registration_code("r", &last_code("r@example.com"))
        .await
        .unwrap();
    record("verify_registration_code");
    assert!(matches!(
        tf.begin_login("none").await.unwrap(),
        LoginStep::Complete(_)
    ));
    record("begin_login (no factor)");

    println!("{wrap:?}:");
    println!("| step | store calls | Redis round trips | SQL round trips |");
    println!("| --- | --- | --- | --- |");
    let mut measured = Vec::new();
    for (name, calls) in &steps {
        let (redis, sql) = round_trips(calls);
        let detail: Vec<String> = calls.iter().map(|(m, n)| format!("{m}×{n}")).collect();
        println!("| {name} | {} | {redis} | {sql} |", detail.join(", "));
        measured.push((*name, redis, sql));
    }

    // (step, Redis round trips, SQL round trips): the budget each step is held to.
    let budget: &[(&str, u32, u32)] = &[
        ("start_totp_setup", 0, 2),
        ("confirm_totp_setup", 2, 8),
        ("begin_login (TOTP user)", 1, 2),
        ("verify_login (TOTP)", 2, 2),
        ("verify_login (wrong code)", 1, 1),
        // The backup code lives in the enrolment store: one redeem there, beside the two steps.
        ("verify_login (backup code)", 2, 3),
        ("status", 1, 2),
        ("regenerate_backup_codes", 2, 7),
        ("disable", 4, 10),
        ("start_email_setup", 2, 3),
        ("confirm_email_setup", 2, 4),
        ("begin_login (email user, sends a code)", 1, 2),
        ("resend_code", 2, 2),
        ("verify_login (email code)", 2, 2),
        ("send_verification_code", 2, 2),
        ("verify_registration_code", 2, 2),
        ("begin_login (no factor)", 0, 1),
    ];
    assert_eq!(
        measured,
        budget.to_vec(),
        "{wrap:?}: round trips per step changed: update the budget and the README"
    );
}
