//! The two-step login: [`TwoFactorService::begin_login`] stores a challenge (and mails a code
//! when email is a method, or texts it to a phone factor), [`TwoFactorService::resend_code`]
//! sends a new one, and
//! [`TwoFactorService::verify_login`] answers it with a TOTP, email or backup code.

//!
//! Each step is at most two calls on the short-lived store: `begin_login` creates the challenge
//! (with the email code and its send reserved) in one; `resend_code` reserves the send, mails,
//! then stores the new code; `verify_login` opens an attempt (loading the challenge, counting it
//! on the challenge and against the user) and settles it (taking the challenge and recording the
//! TOTP step together). The challenge carries what its answer is checked against, so a TOTP or
//! email answer reads no enrolment record; a backup code is redeemed in the enrolment store.

use crate::backup;
use crate::challenge::{
    Challenge, ChallengeRecord, ChallengeToken, ChallengeTotp, CodeRecord, TAG_BYTES,
};
use crate::clock::until;
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::email_code::{refused_error, Channel, CodeKind};
use crate::error::{Error, StoreError};
use crate::events::Event;
use crate::input::check_user;
use crate::keyspace::UserKeys;
use crate::mail::MailContent;
use crate::method::{Method, Verified};
use crate::phone::PhoneNumber;
use crate::rate_limit::LoginContext;
use crate::service::TwoFactorService;
use crate::store::flow::{Begun, NewChallenge, OpenAttempt};
use crate::store::{EnrollmentRecord, StoreKey};
use crate::totp::TotpParams;

/// The outcome of [`TwoFactorService::begin_login`].
///
/// It serializes as the answer to the client: `{"step": "complete", …the Verified fields}` or
/// `{"step": "challenge", "token": "tfc2_…", "methods": […], "expires_at": …, "email_sent": …}`.
/// The challenge's token is in it on purpose (the client sends it back): serialize a `LoginStep`
/// only into that response, never into a log.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LoginStep {
    /// The user has no second factor: the login is complete.
    Complete(Verified),
    /// Ask for a code.
    Challenge(Challenge),
}

/// A challenge located from its token: the user's keys and the challenge's key.
pub(crate) struct Located {
    pub(crate) keys: UserKeys,
    pub(crate) challenge: StoreKey,
}

/// What an answer matched.
enum Matched {
    /// A TOTP code of this step; `reseal` when the secret is sealed under an older key.
    Totp { step: u64, reseal: bool },
    /// The code sent with the challenge (by email or by text).
    Sent,
    /// A backup code, to redeem before the challenge is taken.
    BackupCode(Secret),
}

impl TwoFactorService {
    /// The second step of a login, called after the host has checked the password.
    ///
    /// A user with no factor gets [`LoginStep::Complete`]. Otherwise a challenge is stored and
    /// returned; when email is a method, a code is mailed at once, and for a user with a phone
    /// factor and no email factor it is texted instead ([`Method::Sms`]; a restricted
    /// authenticator under NIST SP 800-63B: TOTP or a security key is stronger).
    ///
    /// `ctx` says who is asking (see [`LoginContext`]). With a client, the step is first
    /// counted against [`Policy::client_login_limit`] for that client, across every account, so
    /// a per-client ceiling holds beside the per-user and per-challenge ones. With a device
    /// token ([`LoginContext::device`]), a live trusted device of the user completes the login
    /// without a code; any other token falls through to the challenge.
    ///
    /// [`Policy::client_login_limit`]: crate::Policy::client_login_limit
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use twofactor::{LoginContext, LoginStep};
    /// # let tf = twofactor::TwoFactorService::builder()
    /// #     .issuer("Acme")
    /// #     .keys(twofactor::Keyring::generate())
    /// #     .otp_store(twofactor::store::MemoryOtpStore::new())
    /// #     .enrollments(twofactor::store::MemoryEnrollmentStore::new())
    /// #     .mailer(twofactor::testing::RecordingMailer::new())
    /// #     .build()?;
    /// let ctx = LoginContext::new().client("203.0.113.7");
    /// match tf.begin_login(&ctx, "alice").await? {
    ///     LoginStep::Complete(verified) => assert_eq!(verified.user(), "alice"),
    ///     LoginStep::Challenge(challenge) => println!("ask for {:?}", challenge.methods()),
    /// }
    /// # Ok::<(), twofactor::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::RateLimited`] past the client's limit (before anything is read or sent);
    /// [`Error::Locked`] while the user's code step is locked; [`Error::InvalidInput`]; store
    /// errors; a delivery error when the email code could not be sent and email is the only method.
    pub async fn begin_login(&self, ctx: &LoginContext, user: &str) -> Result<LoginStep, Error> {
        check_user(user)?;
        self.limit_client(ctx).await?;
        if let Some(device) = ctx.device_token() {
            return self.begin_login_with_device(user, device).await;
        }
        let (rec, remaining) = self.load_with_codes(user).await?;
        self.begin_login_from(user, rec, remaining).await
    }

    /// [`begin_login`](Self::begin_login) from the user's record and backup-code count, loaded
    /// by the caller (a device login that fell through loads them once for both).
    pub(crate) async fn begin_login_from(
        &self,
        user: &str,
        rec: EnrollmentRecord,
        remaining: u32,
    ) -> Result<LoginStep, Error> {
        let policy = &self.inner.policy;
        let now = self.now();
        if let Some(step) = self.recovery_at_login(user, &rec, now).await? {
            return Ok(step);
        }
        if !rec.is_enabled() {
            return Ok(LoginStep::Complete(Verified {
                user: user.to_owned(),
                method: None,
                backup_codes_remaining: remaining,
                verified_at: now,
                recovery_cancelled: false,
            }));
        }
        let mut methods = Vec::with_capacity(3);
        let totp = match &rec.totp {
            Some(t) => {
                methods.push(Method::Totp);
                Some(ChallengeTotp {
                    sealed: t.sealed_secret.clone(),
                    algorithm: crate::service::algorithm(&t.algorithm)?,
                    digits: t.digits,
                    period: t.period,
                })
            }
            None => None,
        };
        // One channel carries the code: email when the user has it, else their phone.
        #[cfg(feature = "webauthn")]
        let (security_key, key_state) = match self.start_assertion(&rec)? {
            Some((options, state)) => (Some(options), Some(state)),
            None => (None, None),
        };
        #[cfg(not(feature = "webauthn"))]
        let key_state: Option<Vec<u8>> = None;
        let recovery_pending = rec.recovery.is_some();
        let email = rec.email.map(|e| e.address);
        let phone = match email {
            Some(_) => None,
            None => rec.phone.map(|p| p.number),
        };
        if email.is_some() {
            methods.push(Method::Email);
        }
        if phone.is_some() {
            methods.push(Method::Sms);
        }
        if key_state.is_some() {
            methods.push(Method::SecurityKey);
        }
        if methods.is_empty() {
            // Only security keys, and this build or policy does not take them.
            return Err(Error::InvalidConfig(
                "the user's only factors are security keys, which are not configured".into(),
            ));
        }
        if remaining > 0 {
            methods.push(Method::BackupCode);
        }
        let keys = self.user_keys(user);
        let (token, id) = ChallengeToken::generate_located(&keys.tag, &self.inner.keys);
        let key = keys.challenge(&id);
        let cooldown = UserKeys::cooldown(&key);
        let expires_at = now.saturating_add(policy.challenge_ttl);
        let record = ChallengeRecord {
            user: user.to_owned(),
            methods: methods.clone(),
            email,
            phone: phone.as_ref().map(|p| p.as_e164().to_owned()),
            totp,
            backup_codes_remaining: remaining,
            expires_at,
            recovery_pending,
            security_key: key_state,
        };
        // The code is made now and stored with the challenge when its send is granted.
        let channel = match (&record.email, &phone) {
            (Some(address), _) => Some(Channel::Email(address)),
            (None, Some(number)) => Some(Channel::Text(number)),
            (None, None) => None,
        };
        let code = channel.map(|_| code::generate_numeric(policy.email_code_digits));
        let code_expires = now.saturating_add(policy.email_code_ttl).min(expires_at);
        let code_record = code.as_ref().map(|c| {
            CodeRecord {
                mac: self.code_mac(&id, user, c),
                expires_at: code_expires,
            }
            .encode()
        });
        let value = record.encode();
        let new = NewChallenge {
            user: keys.user(),
            limits: self.limits(),
            challenge: &key,
            value: &value,
            expires_at,
            send: code_record
                .as_deref()
                .map(|c| (self.send_spec(&cooldown, now), c)),
            // Without an authenticator app the sent code is the only way in (or a backup code,
            // which the user may not have at hand): a refused send refuses the login.
            send_required: record.totp.is_none() && record.security_key.is_none(),
        };
        let granted = match self.inner.otp.begin_challenge(&new, now).await? {
            Begun::Created { send } => send,
            Begun::SendRefused(refused) => return Err(refused_error(refused, now)),
            Begun::Locked { until: t } => {
                return Err(Error::Locked {
                    retry_after: until(t, now),
                })
            }
            Begun::Collision => {
                return Err(Error::Store(StoreError::other("challenge id collision")))
            }
        };
        let (mut email_sent, mut text_sent) = (false, false);
        if let (Some(to), Some(code), Some(sent)) = (channel, &code, granted) {
            let expires_in = code_expires.duration_since(now);
            let delivered = match sent {
                Ok(()) => {
                    self.deliver_code(user, to, &cooldown, CodeKind::Login, code, expires_in)
                        .await
                }
                Err(refused) => Err(refused_error(refused, now)),
            };
            match delivered {
                Ok(()) => {
                    match to {
                        Channel::Email(_) => email_sent = true,
                        Channel::Text(_) => text_sent = true,
                    }
                    self.event(Event::CodeSent {
                        user: user.to_owned(),
                    });
                }
                // With an authenticator app or a security key the user can still answer; they
                // may resend later.
                Err(e) if record.totp.is_some() || record.security_key.is_some() => {
                    tracing::warn!(target: "twofactor", error = %e, "login code not sent");
                }
                Err(e) => {
                    if let Err(gone) = self.inner.otp.delete(&key).await {
                        tracing::warn!(target: "twofactor", error = %gone, "removing a challenge failed");
                    }
                    return Err(e);
                }
            }
        }
        Ok(LoginStep::Challenge(Challenge {
            token,
            methods,
            expires_at,
            email_sent,
            text_sent,
            recovery_pending: record.recovery_pending,
            #[cfg(feature = "webauthn")]
            security_key,
        }))
    }

    fn locate(&self, token: &ChallengeToken) -> Result<(Located, [u8; 16]), Error> {
        let (tag, id): ([u8; TAG_BYTES], [u8; 16]) = token
            .locate(&self.inner.keys)
            .ok_or(Error::InvalidChallenge)?;
        let keys = UserKeys::from_tag(tag);
        let challenge = keys.challenge(&id);
        Ok((Located { keys, challenge }, id))
    }

    /// Sends a new code for a challenge (by email, or by text for a [`Method::Sms`] challenge),
    /// replacing the old one. Counters are not reset: the cooldown, the per-user send budget and
    /// the attempts are the same for both channels.
    ///
    /// # Errors
    /// [`Error::InvalidChallenge`]; [`Error::NoEmailMethod`] when neither email nor SMS is a
    /// method of the challenge (status 409, public code `no_email_method`);
    /// [`Error::Cooldown`] within the cooldown; [`Error::RateLimited`] past the send cap;
    /// delivery and store errors (no cooldown started, no usable code left).
    pub async fn resend_code(&self, token: &ChallengeToken) -> Result<(), Error> {
        let policy = &self.inner.policy;
        let now = self.now();
        let (at, id) = self.locate(token)?;
        let cooldown = UserKeys::cooldown(&at.challenge);
        let value = self
            .reserve_send(&at.keys, Some(&at.challenge), &cooldown, now)
            .await?
            .ok_or(Error::InvalidChallenge)?;
        let record = ChallengeRecord::decode(&value)?;
        let phone = match &record.phone {
            Some(p) => Some(
                PhoneNumber::parse(p)
                    .map_err(|_| Error::Store(StoreError::corrupt("challenge phone")))?,
            ),
            None => None,
        };
        let to = match (&record.email, &phone) {
            (Some(address), _) => Channel::Email(address),
            (None, Some(number)) => Channel::Text(number),
            (None, None) => {
                let _ = self.inner.otp.delete(&cooldown).await;
                return Err(Error::NoEmailMethod);
            }
        };
        let user = record.user.as_str();
        let code = code::generate_numeric(policy.email_code_digits);
        let expires_at = now
            .saturating_add(policy.email_code_ttl)
            .min(record.expires_at);
        let expires_in = expires_at.duration_since(now);
        self.deliver_code(user, to, &cooldown, CodeKind::Login, &code, expires_in)
            .await?;
        let stored = CodeRecord {
            mac: self.code_mac(&id, user, &code),
            expires_at,
        };
        if !self
            .inner
            .otp
            .store_code(&at.challenge, None, &stored.encode(), now)
            .await?
        {
            return Err(Error::InvalidChallenge);
        }
        self.event(Event::CodeSent {
            user: user.to_owned(),
        });
        Ok(())
    }

    /// Answers a challenge with a TOTP code, the emailed code, or a backup code; with the
    /// `webauthn` feature, also a security key's assertion (the JSON of the browser's
    /// `PublicKeyCredential`, recognised by its opening `{`).
    ///
    /// With a client in `ctx`, the attempt is first counted against
    /// [`Policy::client_login_limit`](crate::Policy::client_login_limit) for that client (with
    /// its [`begin_login`](Self::begin_login) steps), before the challenge's and the user's own
    /// counts; past it, [`Error::RateLimited`], with nothing compared.
    ///
    /// Input is normalised (spaces and dashes dropped; case ignored for backup codes). Every
    /// attempt is counted, atomically and before any comparison, against the challenge (void
    /// after [`Policy::challenge_max_attempts`]) and against the user (locked after
    /// [`Policy::lockout_threshold`] consecutive failures, across challenges). On success the
    /// challenge is consumed.
    ///
    /// [`Policy::challenge_max_attempts`]: crate::Policy::challenge_max_attempts
    /// [`Policy::lockout_threshold`]: crate::Policy::lockout_threshold
    ///
    /// # Errors
    /// [`Error::MalformedCode`], [`Error::InvalidChallenge`], [`Error::Expired`],
    /// [`Error::InvalidCode`], [`Error::CodeReused`], [`Error::TooManyAttempts`],
    /// [`Error::Locked`]; store errors (never a success). After a transient store error, retry
    /// with the same token and code: the answer is `Verified`, or [`Error::InvalidChallenge`]
    /// when the failed try had consumed the challenge (see [`Error::Store`]).
    pub async fn verify_login(
        &self,
        ctx: &LoginContext,
        token: &ChallengeToken,
        input: &str,
    ) -> Result<Verified, Error> {
        self.limit_client(ctx).await?;
        #[cfg(feature = "webauthn")]
        if crate::security_key::Assertion::looks_like(input) {
            let assertion = crate::security_key::Assertion::parse(input)?;
            return self.verify_login_key(token, &assertion).await;
        }
        let code = code::normalize(input)?;
        let now = self.now();
        let max = self.inner.policy.challenge_max_attempts;
        let (at, id, attempt, challenge) = self.open_challenge(token, now).await?;
        let user = challenge.user.as_str();
        let sent = attempt.challenge.as_ref().and_then(|c| c.code.as_deref());
        let matched = match self.answer(&id, &challenge, sent, &code, now) {
            Ok(Some(m)) => m,
            outcome => {
                self.fail_attempt(user, &at.keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                });
            }
        };
        // A backup code is redeemed before the challenge is taken: only a code that exists can
        // pass, and of concurrent redemptions exactly one does.
        let mut remaining = challenge.backup_codes_remaining;
        if let Matched::BackupCode(canonical) = &matched {
            match self.redeem_backup(user, canonical, now).await {
                Ok(Some(left)) => remaining = left,
                Ok(None) => {
                    // Spent or unknown. If a concurrent pass took the challenge, this attempt
                    // lost a race: refused, not charged.
                    let charged = self
                        .fail_on(user, &at.keys, &attempt, Some(&at.challenge), now)
                        .await;
                    if !charged {
                        return Err(Error::InvalidChallenge);
                    }
                    return Err(Error::InvalidCode {
                        attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                    });
                }
                Err(e) => {
                    self.fail_attempt(user, &at.keys, &attempt, now).await;
                    return Err(e);
                }
            }
        }
        let step = match &matched {
            Matched::Totp { step, .. } => Some(*step),
            _ => None,
        };
        match self
            .pass_attempt(
                user,
                &at.keys,
                &attempt,
                (Some(&at.challenge), step),
                Error::InvalidChallenge,
                now,
            )
            .await
        {
            Err(Error::CodeReused) => {
                let to = challenge.email.as_deref();
                self.notify(user, to, MailContent::TotpReplayRejected).await;
                return Err(Error::CodeReused);
            }
            other => other?,
        }
        let method = match matched {
            Matched::Totp { reseal, .. } => {
                if reseal {
                    self.reseal(user).await;
                }
                Method::Totp
            }
            Matched::Sent if challenge.phone.is_some() => Method::Sms,
            Matched::Sent => Method::Email,
            Matched::BackupCode(_) => {
                self.event(Event::BackupCodeUsed {
                    user: user.to_owned(),
                    remaining,
                });
                Method::BackupCode
            }
        };
        self.event(Event::Verified {
            user: user.to_owned(),
            method,
        });
        let recovery_cancelled = challenge.recovery_pending && self.recovery().cancel(user).await?;
        Ok(Verified {
            user: user.to_owned(),
            method: Some(method),
            backup_codes_remaining: remaining,
            verified_at: now,
            recovery_cancelled,
        })
    }

    /// Ends every challenge of `user` begun so far ([`OtpStore::end_challenges`]), after a change
    /// of the user's factors was written: a challenge carries what its answer is checked
    /// against (the sealed TOTP secret, the code sent, whether a recovery was pending), so one
    /// begun before the change could otherwise still pass with a factor that is gone. The end
    /// is checked by the same atomic store step that opens or settles an attempt.
    ///
    /// # Errors
    /// Store errors. The change stays written, and the challenges begun before it may still
    /// stand until they lapse ([`Policy::challenge_ttl`](crate::Policy::challenge_ttl)):
    /// calling it again is safe (it only ever ends challenges).
    ///
    /// [`OtpStore::end_challenges`]: crate::store::OtpStore::end_challenges
    pub(crate) async fn end_challenges(&self, user: &str) -> Result<(), Error> {
        let keys = self.user_keys(user);
        self.inner
            .otp
            .end_challenges(keys.user(), &self.limits(), self.now())
            .await?;
        Ok(())
    }

    /// Locates a challenge from its token, opens one attempt on it (counted on the challenge
    /// and against the user, before anything is compared) and decodes it.
    pub(crate) async fn open_challenge(
        &self,
        token: &ChallengeToken,
        now: Timestamp,
    ) -> Result<(Located, [u8; 16], OpenAttempt, ChallengeRecord), Error> {
        let (at, id) = self.locate(token)?;
        let max = self.inner.policy.challenge_max_attempts;
        let attempt = self
            .open_attempt(
                &at.keys,
                Some((&at.challenge, max)),
                Error::InvalidChallenge,
                now,
            )
            .await?;
        let stored = attempt.challenge.as_ref().ok_or(Error::InvalidChallenge)?;
        let challenge = ChallengeRecord::decode(&stored.value)?;
        Ok((at, id, attempt, challenge))
    }

    /// Checks `code` against every method the challenge offers, reading nothing: `None` when
    /// nothing matched.
    fn answer(
        &self,
        id: &[u8; 16],
        challenge: &ChallengeRecord,
        email_code: Option<&[u8]>,
        code: &Secret,
        now: Timestamp,
    ) -> Result<Option<Matched>, Error> {
        let offers = |m: Method| challenge.methods.contains(&m);
        let user = challenge.user.as_str();
        if let Some(canonical) = backup::canonical(code.expose()) {
            return Ok(offers(Method::BackupCode).then_some(Matched::BackupCode(canonical)));
        }
        let sent = offers(Method::Email) || offers(Method::Sms);
        if let (true, Some(bytes)) = (sent, email_code) {
            if code::is_numeric(code, self.inner.policy.email_code_digits) {
                let stored = CodeRecord::decode(bytes)?;
                let mac = self.code_mac(id, user, code);
                if stored.expires_at > now && code::ct_eq(&mac, &stored.mac) {
                    return Ok(Some(Matched::Sent));
                }
            }
        }
        if let (true, Some(totp)) = (offers(Method::Totp), &challenge.totp) {
            let params = TotpParams {
                algorithm: totp.algorithm,
                digits: totp.digits,
                period: totp.period,
            };
            if let Some((step, reseal)) = self.match_totp(user, &totp.sealed, params, code, now)? {
                return Ok(Some(Matched::Totp { step, reseal }));
            }
        }
        Ok(None)
    }
}
