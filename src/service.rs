//! [`TwoFactorService`]: every flow, on the stores, mailer and clock the host plugs in.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backup::{self, BackupCodeSet};
use crate::challenge::{Challenge, ChallengeRecord, ChallengeToken, Purpose};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::code::{self, Secret};
use crate::error::{Error, StoreError};
use crate::events::{Event, EventSink, TracingEvents};
use crate::keys::{hex, Keyring};
use crate::mail::{EnglishTemplates, MailContext, MailKind, Mailer, Message, Templates};
use crate::method::{Method, Verified};
use crate::policy::{BackupCodeHashing, Policy, TotpAlgorithm};
use crate::store::{
    EmailRecord, EnrollmentRecord, EnrollmentStore, OtpStore, PendingTotp, Revision, StoreKey,
    TotpRecord,
};
use crate::totp::{self, TotpParams, TotpSecret};

/// The outcome of [`TwoFactorService::begin_login`].
#[derive(Debug)]
pub enum LoginStep {
    /// The user has no second factor: the login is complete.
    Complete(Verified),
    /// Ask for a code.
    Challenge(Challenge),
}

/// What a TOTP setup shows the user, once.
pub struct TotpSetup {
    secret: Secret,
    uri: Secret,
    svg: String,
    png: Vec<u8>,
    backup_codes: BackupCodeSet,
}

impl std::fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetup([redacted])")
    }
}

impl TotpSetup {
    /// The secret as unpadded base32, for manual entry.
    ///
    /// **Security warning:** show it only to the enrolling user, once.
    pub fn secret_base32(&self) -> &str {
        self.secret.expose()
    }

    /// The `otpauth://` URI (it contains the secret).
    pub fn otpauth_uri(&self) -> &str {
        self.uri.expose()
    }

    /// The QR code of the URI as an SVG document (it contains the secret).
    pub fn qr_svg(&self) -> &str {
        &self.svg
    }

    /// The QR code of the URI as PNG bytes (it contains the secret).
    pub fn qr_png(&self) -> &[u8] {
        &self.png
    }

    /// The backup codes that become valid when the setup is confirmed.
    pub fn backup_codes(&self) -> &[Secret] {
        self.backup_codes.codes()
    }
}

/// The two-factor state of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Whether any factor is enabled.
    pub enabled: bool,
    /// The enabled methods (backup codes included when any remain).
    pub methods: Vec<Method>,
    /// When the TOTP factor was confirmed.
    pub totp_confirmed_at: Option<Timestamp>,
    /// Whether a TOTP setup awaits confirmation.
    pub totp_pending: bool,
    /// The email factor's address.
    pub email: Option<String>,
    /// When the user last passed a second-factor check.
    pub last_verified_at: Option<Timestamp>,
    /// Unused backup codes.
    pub backup_codes_remaining: u32,
}

/// Checks a user's password for the flows that need it (disable). Closures
/// `Fn(&str, &str) -> bool` (user, password) implement it.
pub trait PasswordVerifier: Send + Sync + 'static {
    /// Whether `password` is `user`'s password.
    fn verify(&self, user: &str, password: &str) -> bool;
}

impl<F: Fn(&str, &str) -> bool + Send + Sync + 'static> PasswordVerifier for F {
    fn verify(&self, user: &str, password: &str) -> bool {
        self(user, password)
    }
}

type DisplayNames = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Builds a [`TwoFactorService`].
pub struct ServiceBuilder {
    issuer: Option<String>,
    keys: Option<Keyring>,
    otp: Option<Arc<dyn OtpStore>>,
    enrollments: Option<Arc<dyn EnrollmentStore>>,
    mailer: Option<Arc<dyn Mailer>>,
    templates: Arc<dyn Templates>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    password: Option<Arc<dyn PasswordVerifier>>,
    display_names: Option<Arc<DisplayNames>>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("issuer", &self.issuer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// The product name shown in authenticator apps and messages. Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The keys. Required.
    pub fn keys(mut self, keys: Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The short-lived store. Required.
    pub fn otp_store(self, store: impl OtpStore) -> Self {
        self.otp_store_arc(Arc::new(store))
    }

    /// The short-lived store, shared.
    pub fn otp_store_arc(mut self, store: Arc<dyn OtpStore>) -> Self {
        self.otp = Some(store);
        self
    }

    /// The durable store. Required.
    pub fn enrollments(self, store: impl EnrollmentStore) -> Self {
        self.enrollments_arc(Arc::new(store))
    }

    /// The durable store, shared.
    pub fn enrollments_arc(mut self, store: Arc<dyn EnrollmentStore>) -> Self {
        self.enrollments = Some(store);
        self
    }

    /// The mailer. Required.
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// The message templates. Default [`EnglishTemplates`].
    pub fn templates(mut self, templates: impl Templates) -> Self {
        self.templates = Arc::new(templates);
        self
    }

    /// The policy. Default [`Policy::default`].
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock. Default [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The password check used by [`TwoFactorService::disable`]. Without it, `disable` refuses.
    pub fn password_verifier(mut self, verifier: impl PasswordVerifier) -> Self {
        self.password = Some(Arc::new(verifier));
        self
    }

    /// A lookup of a user's display name, for greetings in messages.
    pub fn display_names(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.display_names = Some(Arc::new(lookup));
        self
    }

    /// Where security events go. Default [`TracingEvents`].
    pub fn events(mut self, sink: impl EventSink) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// The service.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a required part is missing, the issuer is unusable in an
    /// otpauth URI, or the policy fails [`Policy::validate`].
    pub fn build(self) -> Result<TwoFactorService, Error> {
        self.policy.validate()?;
        let issuer = self
            .issuer
            .ok_or_else(|| Error::InvalidConfig("issuer is required".into()))?;
        if issuer.is_empty() || issuer.len() > 128 || issuer.contains(':') {
            return Err(Error::InvalidConfig(
                "issuer must be 1 to 128 characters without ':'".into(),
            ));
        }
        let missing = |what: &str| Error::InvalidConfig(format!("{what} is required"));
        Ok(TwoFactorService {
            inner: Arc::new(Inner {
                issuer,
                keys: self.keys.ok_or_else(|| missing("keys"))?,
                otp: self.otp.ok_or_else(|| missing("otp_store"))?,
                enrollments: self.enrollments.ok_or_else(|| missing("enrollments"))?,
                mailer: self.mailer.ok_or_else(|| missing("mailer"))?,
                templates: self.templates,
                policy: self.policy,
                clock: self.clock,
                password: self.password,
                display_names: self.display_names,
                events: self.events,
            }),
        })
    }
}

struct Inner {
    issuer: String,
    keys: Keyring,
    otp: Arc<dyn OtpStore>,
    enrollments: Arc<dyn EnrollmentStore>,
    mailer: Arc<dyn Mailer>,
    templates: Arc<dyn Templates>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    password: Option<Arc<dyn PasswordVerifier>>,
    display_names: Option<Arc<DisplayNames>>,
    events: Arc<dyn EventSink>,
}

/// Two-factor authentication: enrolment, the second login step, disable, backup codes, status.
///
/// Cheap to clone (an `Arc` inside); share one instance across tasks.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use twofactor::*;
///
/// let mailer = RecordingMailer::new();
/// let tf = TwoFactorService::builder()
///     .issuer("Acme")
///     .keys(Keyring::generate())
///     .otp_store(MemoryOtpStore::new())
///     .enrollments(MemoryEnrollmentStore::new())
///     .mailer(mailer.clone())
///     .build()?;
///
/// // No factor yet: the login completes at once.
/// assert!(matches!(tf.begin_login("alice").await?, LoginStep::Complete(_)));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TwoFactorService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TwoFactorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoFactorService")
            .field("issuer", &self.inner.issuer)
            .field("keys", &self.inner.keys)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// A code pending confirmation (email setup, registration, step-up).
#[derive(Serialize, Deserialize)]
struct PendingCode {
    mac: String,
    address: Option<String>,
    expires_at: Timestamp,
}

/// The email code of a login challenge.
#[derive(Serialize, Deserialize)]
struct ChallengeCode {
    mac: String,
    expires_at: Timestamp,
}

/// The per-user lock state: a generation (whose failure counter is live), the lock level reached
/// and when the current lock lifts.
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct LockState {
    generation: u64,
    level: u32,
    until: Timestamp,
}

/// Purposes of codes sent outside a login challenge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CodePurpose {
    EmailSetup,
    Registration,
    StepUp,
}

impl CodePurpose {
    fn name(self) -> &'static str {
        match self {
            CodePurpose::EmailSetup => "email-setup",
            CodePurpose::Registration => "registration",
            CodePurpose::StepUp => "step-up",
        }
    }
}

/// A user's reservation of one attempt against the per-user ceiling.
struct Attempt {
    state: LockState,
    count: u64,
    /// The user's key tag, computed once per flow.
    tag: String,
}

impl Attempt {
    fn key(&self, what: &str) -> StoreKey {
        tag_key(&self.tag, what)
    }
}

/// The key of a user's short-lived record `what`, under the user's hash tag.
fn tag_key(tag: &str, what: &str) -> StoreKey {
    StoreKey::new(format!("tf:u:{{{tag}}}:{what}"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Store(StoreError::corrupt(e)))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Store(StoreError::corrupt(e)))
}

fn check_user(user: &str) -> Result<(), Error> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(Error::InvalidInput("user id must be 1 to 256 characters"));
    }
    Ok(())
}

fn check_address(address: &str) -> Result<(), Error> {
    let ok = address.len() <= 254
        && address.is_ascii()
        && !address
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        && !address.contains(['<', '>', '"', ',', ';'])
        && matches!(address.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput("not a valid email address"))
    }
}

/// Saturating `Duration` until `t` from `now`, at least one second for a live limit.
fn until(t: Timestamp, now: Timestamp) -> Duration {
    t.duration_since(now).max(Duration::from_secs(1))
}

impl TwoFactorService {
    /// A builder. `issuer`, `keys`, `otp_store`, `enrollments` and `mailer` are required.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder {
            issuer: None,
            keys: None,
            otp: None,
            enrollments: None,
            mailer: None,
            templates: Arc::new(EnglishTemplates),
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
            password: None,
            display_names: None,
            events: Arc::new(TracingEvents),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn event(&self, e: Event) {
        self.inner.events.record(&e);
    }

    // ---- keys of short-lived records -------------------------------------------------------

    fn user_tag(&self, user: &str) -> String {
        let mac = self.inner.keys.mac(&[b"user tag", user.as_bytes()]);
        hex(mac.get(..12).unwrap_or(&mac))
    }

    fn ukey(&self, user: &str, what: &str) -> StoreKey {
        tag_key(&self.user_tag(user), what)
    }

    fn ckey(id: &str, what: &str) -> StoreKey {
        StoreKey::new(format!("tf:c:{{{id}}}:{what}"))
    }

    // ---- enrolment records -----------------------------------------------------------------

    async fn load(&self, user: &str) -> Result<(EnrollmentRecord, Option<Revision>), Error> {
        Ok(match self.inner.enrollments.load(user).await? {
            Some((rec, rev)) => (rec, Some(rev)),
            None => (EnrollmentRecord::new(), None),
        })
    }

    /// Applies `change` to the user's record with compare-and-swap, retrying on a concurrent
    /// change. `change` returns `Ok(false)` to write nothing.
    async fn update<F>(&self, user: &str, change: F) -> Result<EnrollmentRecord, Error>
    where
        F: FnMut(&mut EnrollmentRecord) -> Result<bool, Error>,
    {
        self.update_from(user, None, change).await
    }

    /// As [`update`](Self::update), starting from a record the caller has just loaded (saving a
    /// round trip); on a concurrent change it reloads.
    async fn update_from<F>(
        &self,
        user: &str,
        mut loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        mut change: F,
    ) -> Result<EnrollmentRecord, Error>
    where
        F: FnMut(&mut EnrollmentRecord) -> Result<bool, Error>,
    {
        for _ in 0..5 {
            let (mut rec, rev) = match loaded.take() {
                Some(first) => first,
                None => self.load(user).await?,
            };
            if !change(&mut rec)? {
                return Ok(rec);
            }
            if self
                .inner
                .enrollments
                .save(user, &rec, rev)
                .await?
                .is_some()
            {
                return Ok(rec);
            }
        }
        Err(Error::Store(StoreError::other(
            "enrolment record changed concurrently too often",
        )))
    }

    fn totp_params(rec: &TotpRecord) -> Result<TotpParams, Error> {
        Ok(TotpParams {
            algorithm: TotpAlgorithm::from_name(&rec.algorithm).ok_or(Error::Crypto)?,
            digits: rec.digits,
            period: rec.period,
        })
    }

    // ---- the per-user ceiling --------------------------------------------------------------

    async fn lock_state(&self, lock_key: &StoreKey, now: Timestamp) -> Result<LockState, Error> {
        match self.inner.otp.get(lock_key, now).await? {
            Some(bytes) => decode(&bytes),
            None => Ok(LockState::default()),
        }
    }

    /// Refuses when the user is locked; otherwise reserves one attempt against the per-user
    /// ceiling, counted before any comparison.
    async fn reserve_attempt(&self, user: &str, now: Timestamp) -> Result<Attempt, Error> {
        let policy = &self.inner.policy;
        let tag = self.user_tag(user);
        let state = self.lock_state(&tag_key(&tag, "lock"), now).await?;
        if state.until > now {
            return Err(Error::Locked {
                retry_after: until(state.until, now),
            });
        }
        let key = tag_key(&tag, &format!("fails:{}", state.generation));
        let count = self
            .inner
            .otp
            .increment(&key, now.saturating_add(policy.failure_window), now)
            .await?;
        if count > u64::from(policy.lockout_threshold) {
            // The lock for this generation is being set by the attempt that reached the
            // threshold; until it is, refuse.
            return Err(Error::Locked {
                retry_after: policy.lock_duration(state.level),
            });
        }
        Ok(Attempt { state, count, tag })
    }

    /// Records the failure of a reserved attempt; the one that reaches the threshold locks.
    async fn fail_attempt(
        &self,
        user: &str,
        attempt: &Attempt,
        now: Timestamp,
    ) -> Result<(), Error> {
        let policy = &self.inner.policy;
        self.event(Event::CodeRejected {
            user: user.to_owned(),
        });
        if attempt.count == u64::from(policy.lockout_threshold) {
            let lock_for = policy.lock_duration(attempt.state.level);
            let next = LockState {
                generation: attempt.state.generation.wrapping_add(1),
                level: attempt.state.level.saturating_add(1),
                until: now.saturating_add(lock_for),
            };
            let expires = next.until.saturating_add(policy.failure_window);
            self.inner
                .otp
                .put(&attempt.key("lock"), &encode(&next)?, expires, now)
                .await?;
            self.event(Event::LockedOut {
                user: user.to_owned(),
                until: next.until,
            });
        }
        Ok(())
    }

    /// A success ends the run of consecutive failures: a new generation, level 0.
    async fn reset_attempts(&self, attempt: &Attempt, now: Timestamp) -> Result<(), Error> {
        let next = LockState {
            generation: attempt.state.generation.wrapping_add(1),
            level: 0,
            until: Timestamp::EPOCH,
        };
        let expires = now.saturating_add(self.inner.policy.failure_window);
        self.inner
            .otp
            .put(&attempt.key("lock"), &encode(&next)?, expires, now)
            .await?;
        Ok(())
    }

    /// Settles a reserved attempt: a success resets the run of failures, anything else counts as
    /// a failure (so that the attempt reaching the threshold always sets the lock).
    async fn settle<T>(
        &self,
        user: &str,
        attempt: &Attempt,
        now: Timestamp,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        match result {
            Ok(v) => {
                self.reset_attempts(attempt, now).await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(store) = self.fail_attempt(user, attempt, now).await {
                    tracing::warn!(target: "twofactor", error = %store, "recording a failure failed");
                }
                Err(e)
            }
        }
    }

    // ---- sending codes ---------------------------------------------------------------------

    fn code_mac(&self, scope: &str, user: &str, code: &Secret) -> String {
        hex(&self.inner.keys.mac(&[
            b"code",
            scope.as_bytes(),
            user.as_bytes(),
            code.expose().as_bytes(),
        ]))
    }

    /// Takes a cooldown slot and a send-cap slot; on refusal, says how long to wait.
    async fn reserve_send(
        &self,
        user: &str,
        cooldown: &StoreKey,
        now: Timestamp,
    ) -> Result<(), Error> {
        let policy = &self.inner.policy;
        let cool_until = now.saturating_add(policy.resend_cooldown);
        let stamp = encode(&cool_until)?;
        if !self
            .inner
            .otp
            .put_if_absent(cooldown, &stamp, cool_until, now)
            .await?
        {
            let wait = match self.inner.otp.get(cooldown, now).await? {
                Some(b) => decode::<Timestamp>(&b).map(|t| until(t, now))?,
                None => Duration::from_secs(1),
            };
            return Err(Error::Cooldown { retry_after: wait });
        }
        let sends = self
            .inner
            .otp
            .increment(
                &self.ukey(user, "sends"),
                now.saturating_add(policy.send_window),
                now,
            )
            .await;
        match sends {
            Ok(n) if n <= u64::from(policy.max_sends) => Ok(()),
            Ok(_) => {
                self.inner.otp.delete(cooldown).await?;
                Err(Error::RateLimited {
                    retry_after: policy.send_window,
                })
            }
            Err(e) => {
                let _ = self.inner.otp.delete(cooldown).await;
                Err(e.into())
            }
        }
    }

    /// Renders and sends one message.
    async fn send_mail(&self, user: &str, to: &str, kind: MailKind<'_>) -> Result<(), Error> {
        let name = self.inner.display_names.as_ref().and_then(|f| f(user));
        let ctx = MailContext::new(&self.inner.issuer, name.as_deref(), kind);
        let rendered = self.inner.templates.render(&ctx);
        let message = Message::new(to, kind.kind(), rendered);
        self.inner.mailer.send(&message).await?;
        Ok(())
    }

    /// Sends a notification; a failure is logged, not returned (the action it reports is done).
    async fn notify(&self, user: &str, to: Option<&str>, kind: MailKind<'_>) {
        if let Some(to) = to {
            if let Err(e) = self.send_mail(user, to, kind).await {
                tracing::warn!(target: "twofactor", error = %e, "notification not delivered");
            }
        }
    }

    /// Mails a fresh code and then stores it under `code_key`, replacing the previous one. On a
    /// failed send the previous code stays as it was and the cooldown is lifted, so that the user
    /// may retry at once; on a failed store the new code is unusable (fail closed).
    async fn store_and_send<T: Serialize>(
        &self,
        user: &str,
        to: &str,
        (code_key, cooldown): (&StoreKey, &StoreKey),
        record: impl FnOnce(&Secret) -> T,
        kind: impl FnOnce(&str) -> MailKind<'_>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let policy = &self.inner.policy;
        let code = code::generate_numeric(policy.email_code_digits);
        let expires = now.saturating_add(policy.email_code_ttl);
        let stored = encode(&record(&code))?;
        if let Err(e) = self.send_mail(user, to, kind(code.expose())).await {
            let _ = self.inner.otp.delete(cooldown).await;
            return Err(e);
        }
        self.inner.otp.put(code_key, &stored, expires, now).await?;
        self.event(Event::CodeSent {
            user: user.to_owned(),
        });
        Ok(())
    }

    async fn send_purpose_code(
        &self,
        user: &str,
        address: &str,
        purpose: CodePurpose,
    ) -> Result<(), Error> {
        let now = self.now();
        let cooldown = self.ukey(user, &format!("cooldown:{}", purpose.name()));
        self.reserve_send(user, &cooldown, now).await?;
        let code_key = self.ukey(user, &format!("code:{}", purpose.name()));
        let expires_at = now.saturating_add(self.inner.policy.email_code_ttl);
        let ttl = self.inner.policy.email_code_ttl;
        self.store_and_send(
            user,
            address,
            (&code_key, &cooldown),
            |code| PendingCode {
                mac: self.code_mac(purpose.name(), user, code),
                address: Some(address.to_owned()),
                expires_at,
            },
            |code| match purpose {
                CodePurpose::EmailSetup => MailKind::EmailSetupCode {
                    code,
                    expires_in: ttl,
                },
                CodePurpose::Registration => MailKind::RegistrationCode {
                    code,
                    expires_in: ttl,
                },
                CodePurpose::StepUp => MailKind::LoginCode {
                    code,
                    expires_in: ttl,
                },
            },
            now,
        )
        .await
    }

    /// Checks a code sent for `purpose`; on success it is consumed and its address returned.
    async fn verify_purpose_code(
        &self,
        user: &str,
        input: &str,
        purpose: CodePurpose,
    ) -> Result<String, Error> {
        let code = code::normalize(input)?;
        if !code::is_numeric(&code, self.inner.policy.email_code_digits) {
            return Err(Error::MalformedCode);
        }
        let now = self.now();
        let attempt = self.reserve_attempt(user, now).await?;
        let result = self.match_purpose_code(user, &code, purpose, now).await;
        self.settle(user, &attempt, now, result).await
    }

    /// Compares `code` with the pending code of `purpose`, counting the attempt against the code
    /// first; on a match the code is consumed. The caller has reserved a per-user attempt.
    async fn match_purpose_code(
        &self,
        user: &str,
        code: &Secret,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> Result<String, Error> {
        let code_key = self.ukey(user, &format!("code:{}", purpose.name()));
        let stored = self
            .inner
            .otp
            .get(&code_key, now)
            .await?
            .ok_or(Error::NothingPending)?;
        let pending: PendingCode = decode(&stored)?;
        if pending.expires_at <= now {
            return Err(Error::Expired);
        }
        let attempts_key = self.ukey(user, &format!("attempts:{}", purpose.name()));
        let n = self
            .inner
            .otp
            .increment(&attempts_key, pending.expires_at, now)
            .await?;
        let max = u64::from(self.inner.policy.code_max_attempts);
        if n > max {
            self.inner.otp.delete(&code_key).await?;
            return Err(Error::TooManyAttempts);
        }
        let expected = self.code_mac(purpose.name(), user, code);
        if !code::ct_eq(expected.as_bytes(), pending.mac.as_bytes()) {
            return Err(Error::InvalidCode {
                attempts_remaining: Some(u32::try_from(max - n).unwrap_or(0)),
            });
        }
        // Single use: of concurrent correct submissions, only the one that takes the very record
        // it checked succeeds.
        match self.inner.otp.take(&code_key, now).await? {
            Some(taken) if taken == stored => {}
            _ => return Err(Error::CodeReused),
        }
        let _ = self.inner.otp.delete(&attempts_key).await;
        pending.address.ok_or(Error::NothingPending)
    }

    // ---- TOTP ------------------------------------------------------------------------------

    /// Starts (or restarts) a TOTP setup: a new secret, its otpauth URI and QR code, and a backup
    /// code set that becomes valid on confirmation. A second call replaces an unconfirmed setup.
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`] when TOTP is already confirmed; [`Error::InvalidInput`] for an
    /// unusable user id or account name; store errors.
    pub async fn start_totp_setup(
        &self,
        user: &str,
        account_name: &str,
    ) -> Result<TotpSetup, Error> {
        check_user(user)?;
        let policy = &self.inner.policy;
        let now = self.now();
        let secret = TotpSecret::generate(policy.totp_secret_bytes)?;
        let params = TotpParams {
            algorithm: policy.totp_algorithm,
            digits: policy.totp_digits,
            period: policy.totp_period.as_secs(),
        };
        let uri = Secret::new(totp::otpauth_uri(
            &self.inner.issuer,
            account_name,
            &secret,
            params,
        )?);
        let svg = totp::qr_svg(uri.expose())?;
        let png = totp::qr_png(uri.expose())?;
        let codes = BackupCodeSet::generate(policy.backup_code_count as usize);
        let records = codes.records(&self.inner.keys, user, policy.backup_code_hashing)?;
        let sealed = self.inner.keys.seal(user, secret.as_bytes())?;
        let totp_rec = TotpRecord::new(
            sealed,
            params.algorithm.name(),
            params.digits,
            params.period,
            now,
        );
        let pending =
            PendingTotp::new(totp_rec, records, now.saturating_add(policy.totp_setup_ttl));
        self.update(user, |rec| {
            if rec.totp.is_some() {
                return Err(Error::AlreadyEnrolled);
            }
            rec.pending_totp = Some(pending.clone());
            Ok(true)
        })
        .await?;
        Ok(TotpSetup {
            secret: Secret::new(secret.to_base32()),
            uri,
            svg,
            png,
            backup_codes: codes,
        })
    }

    /// Confirms a TOTP setup with a code from the app, enabling TOTP and installing the backup
    /// codes shown at setup. The code's step is recorded, so it cannot be replayed at login.
    ///
    /// # Errors
    /// [`Error::NothingPending`] without a live setup; [`Error::InvalidCode`], [`Error::CodeReused`],
    /// [`Error::Locked`], [`Error::MalformedCode`]; store errors (nothing is half-enabled).
    pub async fn confirm_totp_setup(&self, user: &str, code: &str) -> Result<(), Error> {
        check_user(user)?;
        let input = code::normalize(code)?;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        if rec.totp.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        let pending = match &rec.pending_totp {
            Some(p) if p.expires_at > now => p.clone(),
            _ => return Err(Error::NothingPending),
        };
        if !code::is_numeric(&input, pending.totp.digits) {
            return Err(Error::MalformedCode);
        }
        let attempt = self.reserve_attempt(user, now).await?;
        let checked = self
            .check_totp(user, &attempt, &pending.totp, &input, now)
            .await;
        self.settle(user, &attempt, now, checked).await?;
        // Install the backup codes first: if saving the record then fails, a retry installs the
        // same set again and nothing is lost.
        self.inner
            .enrollments
            .replace_backup_codes(user, &pending.backup_codes, now)
            .await?;
        let sealed = pending.totp.sealed_secret.clone();
        self.update_from(user, Some((rec, rev)), |rec| {
            match &rec.pending_totp {
                Some(p) if p.totp.sealed_secret == sealed => {}
                _ => return Err(Error::NothingPending),
            }
            let mut totp = pending.totp.clone();
            totp.confirmed_at = Some(now);
            rec.totp = Some(totp);
            rec.pending_totp = None;
            rec.last_verified_at = Some(now);
            Ok(true)
        })
        .await?;
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::Totp,
        });
        Ok(())
    }

    /// Checks a TOTP code against `rec`, recording its step. `Ok(true)` when the secret was sealed
    /// under an older key (the caller may re-seal).
    async fn check_totp(
        &self,
        user: &str,
        attempt: &Attempt,
        rec: &TotpRecord,
        code: &Secret,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let params = Self::totp_params(rec)?;
        let (secret, old_key) = self.inner.keys.open(user, &rec.sealed_secret)?;
        let skew = self.inner.policy.totp_skew;
        let Some(step) =
            totp::matching_step(&secret, params, now.as_unix_secs(), skew, code.expose())
        else {
            return Err(Error::InvalidCode {
                attempts_remaining: None,
            });
        };
        // The step stays recorded until no code of it could be accepted any more.
        let last_valid = step
            .saturating_add(u64::from(skew))
            .saturating_add(1)
            .saturating_mul(params.period);
        let expires = Timestamp::from_unix_secs(last_valid).saturating_add(Duration::from_secs(1));
        if !self
            .inner
            .otp
            .advance(&attempt.key("totp-step"), step, expires, now)
            .await?
        {
            self.event(Event::ReplayRejected {
                user: user.to_owned(),
            });
            return Err(Error::CodeReused);
        }
        Ok(old_key)
    }

    /// Re-seals a TOTP secret under the current key after a rotation. Best effort: the old
    /// envelope keeps working if this fails.
    async fn reseal(&self, user: &str) {
        let keys = &self.inner.keys;
        let result = self
            .update(user, |rec| {
                let Some(totp) = rec.totp.as_mut() else {
                    return Ok(false);
                };
                let (secret, old) = keys.open(user, &totp.sealed_secret)?;
                if !old {
                    return Ok(false);
                }
                totp.sealed_secret = keys.seal(user, &secret)?;
                Ok(true)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(target: "twofactor", error = %e, "re-sealing a TOTP secret failed");
        }
    }

    // ---- email 2FA and registration --------------------------------------------------------

    /// Mails a code to `address`; confirming it with [`confirm_email_setup`](Self::confirm_email_setup)
    /// makes the proven address a second factor.
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`] when email 2FA is on; [`Error::InvalidInput`];
    /// [`Error::Cooldown`] / [`Error::RateLimited`]; delivery and store errors (no usable code left).
    pub async fn start_email_setup(&self, user: &str, address: &str) -> Result<(), Error> {
        check_user(user)?;
        check_address(address)?;
        let (rec, _) = self.load(user).await?;
        if rec.email.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.send_purpose_code(user, address, CodePurpose::EmailSetup)
            .await
    }

    /// Confirms the email setup code, enabling email as a factor. Returns the proven address.
    ///
    /// # Errors
    /// [`Error::NothingPending`], [`Error::InvalidCode`], [`Error::Expired`],
    /// [`Error::TooManyAttempts`], [`Error::Locked`], [`Error::MalformedCode`]; store errors.
    pub async fn confirm_email_setup(&self, user: &str, code: &str) -> Result<String, Error> {
        check_user(user)?;
        let address = self
            .verify_purpose_code(user, code, CodePurpose::EmailSetup)
            .await?;
        let now = self.now();
        self.update(user, |rec| {
            rec.email = Some(EmailRecord::new(address.clone(), now));
            rec.last_verified_at = Some(now);
            Ok(true)
        })
        .await?;
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::Email,
        });
        Ok(address)
    }

    /// Mails a code that verifies `address` at registration (not a second factor by itself).
    ///
    /// # Errors
    /// As [`start_email_setup`](Self::start_email_setup), without `AlreadyEnrolled`.
    pub async fn send_verification_code(&self, user: &str, address: &str) -> Result<(), Error> {
        check_user(user)?;
        check_address(address)?;
        self.send_purpose_code(user, address, CodePurpose::Registration)
            .await
    }

    /// Checks a registration code; returns the address it proves.
    ///
    /// # Errors
    /// As [`confirm_email_setup`](Self::confirm_email_setup).
    pub async fn verify_registration_code(&self, user: &str, code: &str) -> Result<String, Error> {
        check_user(user)?;
        self.verify_purpose_code(user, code, CodePurpose::Registration)
            .await
    }

    /// Mails a code to the user's email factor, to answer [`disable`](Self::disable) or
    /// [`regenerate_backup_codes`](Self::regenerate_backup_codes) when they have no app at hand.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] without an email factor; cooldown, cap, delivery and store errors.
    pub async fn send_step_up_code(&self, user: &str) -> Result<(), Error> {
        check_user(user)?;
        let (rec, _) = self.load(user).await?;
        let address = rec.email.map(|e| e.address).ok_or(Error::NotEnrolled)?;
        self.send_purpose_code(user, &address, CodePurpose::StepUp)
            .await
    }

    // ---- login -----------------------------------------------------------------------------

    /// The second step of a login, called after the host has checked the password.
    ///
    /// A user with no factor gets [`LoginStep::Complete`]. Otherwise a challenge is stored and
    /// returned; when email is a method, a code is mailed at once.
    ///
    /// # Errors
    /// [`Error::Locked`] while the user's code step is locked; [`Error::InvalidInput`]; store
    /// errors; a delivery error when the email code could not be sent and email is the only method.
    pub async fn begin_login(&self, user: &str) -> Result<LoginStep, Error> {
        check_user(user)?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        let remaining = self.inner.enrollments.backup_codes_remaining(user).await?;
        if !rec.is_enabled() {
            return Ok(LoginStep::Complete(Verified {
                user: user.to_owned(),
                method: None,
                backup_codes_remaining: remaining,
                verified_at: now,
            }));
        }
        let lock = self.lock_state(&self.ukey(user, "lock"), now).await?;
        if lock.until > now {
            return Err(Error::Locked {
                retry_after: until(lock.until, now),
            });
        }
        let mut methods = Vec::new();
        if rec.totp.is_some() {
            methods.push(Method::Totp);
        }
        if rec.email.is_some() {
            methods.push(Method::Email);
        }
        if remaining > 0 {
            methods.push(Method::BackupCode);
        }
        let token = ChallengeToken::generate();
        let id = token.id(&self.inner.keys);
        let expires_at = now.saturating_add(self.inner.policy.challenge_ttl);
        let record = ChallengeRecord {
            v: 1,
            user: user.to_owned(),
            purpose: Purpose::Login,
            methods: methods.clone(),
            email: rec.email.as_ref().map(|e| e.address.clone()),
            created_at: now,
            expires_at,
        };
        if !self
            .inner
            .otp
            .put_if_absent(
                &Self::ckey(&id, "challenge"),
                &encode(&record)?,
                expires_at,
                now,
            )
            .await?
        {
            return Err(Error::Store(StoreError::other("challenge id collision")));
        }
        let mut email_sent = false;
        if let Some(address) = &record.email {
            match self.send_login_code(&id, &record, address, now).await {
                Ok(()) => email_sent = true,
                // With an authenticator app the user can still answer; they may resend later.
                Err(
                    e @ (Error::Delivery(_) | Error::RateLimited { .. } | Error::Cooldown { .. }),
                ) if methods.contains(&Method::Totp) => {
                    tracing::warn!(target: "twofactor", error = %e, "login code not sent");
                }
                Err(e) => {
                    let _ = self.inner.otp.delete(&Self::ckey(&id, "challenge")).await;
                    return Err(e);
                }
            }
        }
        Ok(LoginStep::Challenge(Challenge {
            token,
            methods,
            expires_at,
            email_sent,
        }))
    }

    async fn send_login_code(
        &self,
        id: &str,
        record: &ChallengeRecord,
        address: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        let cooldown = Self::ckey(id, "cooldown");
        self.reserve_send(&record.user, &cooldown, now).await?;
        let expires_at = now
            .saturating_add(self.inner.policy.email_code_ttl)
            .min(record.expires_at);
        let ttl = expires_at.duration_since(now);
        self.store_and_send(
            &record.user,
            address,
            (&Self::ckey(id, "code"), &cooldown),
            |code| ChallengeCode {
                mac: self.code_mac(id, &record.user, code),
                expires_at,
            },
            |code| MailKind::LoginCode {
                code,
                expires_in: ttl,
            },
            now,
        )
        .await
    }

    async fn load_challenge(
        &self,
        token: &ChallengeToken,
        now: Timestamp,
    ) -> Result<(String, ChallengeRecord), Error> {
        let id = token.id(&self.inner.keys);
        let bytes = self
            .inner
            .otp
            .get(&Self::ckey(&id, "challenge"), now)
            .await?
            .ok_or(Error::InvalidChallenge)?;
        let record: ChallengeRecord = decode(&bytes)?;
        if record.purpose != Purpose::Login || record.v != 1 {
            return Err(Error::InvalidChallenge);
        }
        if record.expires_at <= now {
            return Err(Error::Expired);
        }
        Ok((id, record))
    }

    /// Sends a new email code for a challenge, replacing the old one. Counters are not reset.
    ///
    /// # Errors
    /// [`Error::InvalidChallenge`]; [`Error::NotEnrolled`] when email is not a method;
    /// [`Error::Cooldown`] within the cooldown; [`Error::RateLimited`] past the send cap;
    /// delivery and store errors (no cooldown started, no usable code left).
    pub async fn resend_code(&self, token: &ChallengeToken) -> Result<(), Error> {
        let now = self.now();
        let (id, record) = self.load_challenge(token, now).await?;
        let address = record.email.clone().ok_or(Error::NotEnrolled)?;
        self.send_login_code(&id, &record, &address, now).await
    }

    /// Answers a challenge with a TOTP code, the emailed code, or a backup code.
    ///
    /// Input is normalised (spaces and dashes dropped; case ignored for backup codes). Every
    /// attempt is counted, atomically and before any comparison, against the challenge (void
    /// after [`Policy::challenge_max_attempts`]) and against the user (locked after
    /// [`Policy::lockout_threshold`] consecutive failures, across challenges). On success the
    /// challenge is consumed.
    ///
    /// # Errors
    /// [`Error::MalformedCode`], [`Error::InvalidChallenge`], [`Error::Expired`],
    /// [`Error::InvalidCode`], [`Error::CodeReused`], [`Error::TooManyAttempts`],
    /// [`Error::Locked`]; store errors (never a success).
    pub async fn verify_login(
        &self,
        token: &ChallengeToken,
        input: &str,
    ) -> Result<Verified, Error> {
        let code = code::normalize(input)?;
        let now = self.now();
        let (id, challenge) = self.load_challenge(token, now).await?;
        let user = challenge.user.as_str();
        let max = u64::from(self.inner.policy.challenge_max_attempts);
        let attempts = self
            .inner
            .otp
            .increment(&Self::ckey(&id, "attempts"), challenge.expires_at, now)
            .await?;
        if attempts > max {
            let _ = self.inner.otp.delete(&Self::ckey(&id, "challenge")).await;
            return Err(Error::TooManyAttempts);
        }
        let attempt = self.reserve_attempt(user, now).await?;
        let result = self.answer(&id, &challenge, &attempt, &code, now).await;
        let (method, rec, rev, reseal) = match self.settle(user, &attempt, now, result).await {
            Ok(v) => v,
            Err(Error::InvalidCode { .. }) => {
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(u32::try_from(max - attempts).unwrap_or(0)),
                })
            }
            Err(e) => return Err(e),
        };

        self.update_from(user, Some((rec, rev)), |r| {
            r.last_verified_at = Some(now);
            Ok(true)
        })
        .await?;
        if reseal {
            self.reseal(user).await;
        }
        let remaining = self.inner.enrollments.backup_codes_remaining(user).await?;
        if method == Method::BackupCode {
            self.event(Event::BackupCodeUsed {
                user: user.to_owned(),
                remaining,
            });
        }
        self.event(Event::Verified {
            user: user.to_owned(),
            method,
        });
        Ok(Verified {
            user: user.to_owned(),
            method: Some(method),
            backup_codes_remaining: remaining,
            verified_at: now,
        })
    }

    /// Checks `code` against every method the challenge offers and, on a match, consumes the
    /// challenge. Returns the method, the enrolment record read and its revision, and whether the
    /// TOTP secret should be re-sealed.
    async fn answer(
        &self,
        id: &str,
        challenge: &ChallengeRecord,
        attempt: &Attempt,
        code: &Secret,
        now: Timestamp,
    ) -> Result<(Method, EnrollmentRecord, Option<Revision>, bool), Error> {
        let user = challenge.user.as_str();
        let (rec, rev) = self.load(user).await?;
        let offers = |m: Method| challenge.methods.contains(&m);
        let mut matched = None;
        if let Some(canonical) = backup::canonical(code.expose()) {
            if offers(Method::BackupCode) && self.consume_backup(user, &canonical, now).await? {
                matched = Some((Method::BackupCode, false));
            }
        } else {
            if offers(Method::Email) && code::is_numeric(code, self.inner.policy.email_code_digits)
            {
                if let Some(bytes) = self.inner.otp.get(&Self::ckey(id, "code"), now).await? {
                    let stored: ChallengeCode = decode(&bytes)?;
                    let mac = self.code_mac(id, user, code);
                    if stored.expires_at > now && code::ct_eq(mac.as_bytes(), stored.mac.as_bytes())
                    {
                        matched = Some((Method::Email, false));
                    }
                }
            }
            if matched.is_none() && offers(Method::Totp) {
                if let Some(totp) = rec
                    .totp
                    .as_ref()
                    .filter(|t| code::is_numeric(code, t.digits))
                {
                    match self.check_totp(user, attempt, totp, code, now).await {
                        Ok(old_key) => matched = Some((Method::Totp, old_key)),
                        Err(Error::CodeReused) => {
                            let to = rec.email.as_ref().map(|e| e.address.as_str());
                            self.notify(user, to, MailKind::TotpReplayRejected).await;
                            return Err(Error::CodeReused);
                        }
                        Err(Error::InvalidCode { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let Some((method, reseal)) = matched else {
            return Err(Error::InvalidCode {
                attempts_remaining: None,
            });
        };
        // Single use: of concurrent successes, one takes the challenge.
        if self
            .inner
            .otp
            .take(&Self::ckey(id, "challenge"), now)
            .await?
            .is_none()
        {
            return Err(Error::InvalidChallenge);
        }
        if challenge.email.is_some() {
            let _ = self.inner.otp.delete(&Self::ckey(id, "code")).await;
        }
        Ok((method, rec, rev, reseal))
    }

    async fn consume_backup(
        &self,
        user: &str,
        canonical: &Secret,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let keys = &self.inner.keys;
        let store = &self.inner.enrollments;
        match self.inner.policy.backup_code_hashing {
            BackupCodeHashing::Hmac => {
                let lookup = backup::full_lookup(keys, user, canonical);
                Ok(store.consume_backup_code(user, &lookup, now).await?)
            }
            BackupCodeHashing::Argon2id => {
                let lookup = backup::short_lookup(keys, user, canonical);
                let Some(found) = store.find_backup_code(user, &lookup).await? else {
                    return Ok(false);
                };
                let ok = found
                    .verifier
                    .as_deref()
                    .is_some_and(|v| backup::check_verifier(canonical, v));
                Ok(ok && store.consume_backup_code(user, &lookup, now).await?)
            }
        }
    }

    // ---- step-up: disable and regenerate ----------------------------------------------------

    /// Checks a fresh factor outside a login (a TOTP code, a step-up email code, or a backup
    /// code) against a reserved attempt.
    async fn step_up(
        &self,
        user: &str,
        rec: &EnrollmentRecord,
        attempt: &Attempt,
        code: &Secret,
        now: Timestamp,
    ) -> Result<Method, Error> {
        let invalid = || Error::InvalidCode {
            attempts_remaining: None,
        };
        if let Some(canonical) = backup::canonical(code.expose()) {
            if !self.consume_backup(user, &canonical, now).await? {
                return Err(invalid());
            }
            let remaining = self.inner.enrollments.backup_codes_remaining(user).await?;
            self.event(Event::BackupCodeUsed {
                user: user.to_owned(),
                remaining,
            });
            return Ok(Method::BackupCode);
        }
        if rec.email.is_some() && code::is_numeric(code, self.inner.policy.email_code_digits) {
            match self
                .match_purpose_code(user, code, CodePurpose::StepUp, now)
                .await
            {
                Ok(_) => return Ok(Method::Email),
                Err(Error::InvalidCode { .. } | Error::NothingPending) if rec.totp.is_some() => {}
                Err(Error::NothingPending) => return Err(invalid()),
                Err(e) => return Err(e),
            }
        }
        match rec
            .totp
            .as_ref()
            .filter(|t| code::is_numeric(code, t.digits))
        {
            Some(totp) => match self.check_totp(user, attempt, totp, code, now).await {
                Ok(_) => Ok(Method::Totp),
                Err(Error::CodeReused) => {
                    let to = rec.email.as_ref().map(|e| e.address.as_str());
                    self.notify(user, to, MailKind::TotpReplayRejected).await;
                    Err(Error::CodeReused)
                }
                Err(e) => Err(e),
            },
            None => Err(invalid()),
        }
    }

    /// Turns two-factor authentication off: needs the password (checked by the host's
    /// [`PasswordVerifier`]) and a current TOTP code, step-up email code or backup code. Removes
    /// every factor and backup code, and notifies the email factor if there was one.
    ///
    /// # Errors
    /// [`Error::InvalidPassword`], [`Error::NotEnrolled`], [`Error::InvalidCode`],
    /// [`Error::Locked`], …; [`Error::InvalidConfig`] when no password verifier is configured.
    pub async fn disable(&self, user: &str, password: &str, code: &str) -> Result<(), Error> {
        check_user(user)?;
        let verifier = self
            .inner
            .password
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("no password verifier configured".into()))?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        // A wrong password counts against the same ceiling as a wrong code.
        let code = code::normalize(code)?;
        let attempt = self.reserve_attempt(user, now).await?;
        let result = if verifier.verify(user, password) {
            self.step_up(user, &rec, &attempt, &code, now).await
        } else {
            Err(Error::InvalidPassword)
        };
        self.settle(user, &attempt, now, result).await?;
        self.inner.enrollments.remove(user).await?;
        self.event(Event::FactorDisabled {
            user: user.to_owned(),
        });
        let to = rec.email.as_ref().map(|e| e.address.as_str());
        self.notify(user, to, MailKind::TwoFactorDisabled).await;
        Ok(())
    }

    /// Replaces the backup codes with a new set, after a fresh factor (TOTP, step-up email code,
    /// or one of the current backup codes). Every old code stops working.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`], [`Error::InvalidCode`], [`Error::Locked`], …; store errors.
    pub async fn regenerate_backup_codes(
        &self,
        user: &str,
        code: &str,
    ) -> Result<Vec<Secret>, Error> {
        check_user(user)?;
        let code = code::normalize(code)?;
        let policy = &self.inner.policy;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        let attempt = self.reserve_attempt(user, now).await?;
        let result = self.step_up(user, &rec, &attempt, &code, now).await;
        self.settle(user, &attempt, now, result).await?;
        let set = BackupCodeSet::generate(policy.backup_code_count as usize);
        let records = set.records(&self.inner.keys, user, policy.backup_code_hashing)?;
        self.inner
            .enrollments
            .replace_backup_codes(user, &records, now)
            .await?;
        self.event(Event::BackupCodesRegenerated {
            user: user.to_owned(),
        });
        let to = rec.email.as_ref().map(|e| e.address.as_str());
        self.notify(user, to, MailKind::BackupCodesRegenerated)
            .await;
        Ok(set.codes().to_vec())
    }

    /// The user's two-factor state.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn status(&self, user: &str) -> Result<Status, Error> {
        check_user(user)?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        let remaining = self.inner.enrollments.backup_codes_remaining(user).await?;
        let mut methods = Vec::new();
        if rec.totp.is_some() {
            methods.push(Method::Totp);
        }
        if rec.email.is_some() {
            methods.push(Method::Email);
        }
        if rec.is_enabled() && remaining > 0 {
            methods.push(Method::BackupCode);
        }
        Ok(Status {
            enabled: rec.is_enabled(),
            methods,
            totp_confirmed_at: rec.totp.as_ref().and_then(|t| t.confirmed_at),
            totp_pending: rec
                .pending_totp
                .as_ref()
                .is_some_and(|p| p.expires_at > now),
            email: rec.email.map(|e| e.address),
            last_verified_at: rec.last_verified_at,
            backup_codes_remaining: remaining,
        })
    }
}
