//! The two-step login: [`TwoFactorService::begin_login`] stores a challenge (and mails a code
//! when email is a method), [`TwoFactorService::resend_code`] mails a new one, and
//! [`TwoFactorService::verify_login`] answers it with a TOTP, email or backup code.

use crate::backup;
use crate::challenge::{Challenge, ChallengeRecord, ChallengeToken, Purpose};
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::email_code::ChallengeCode;
use crate::error::{Error, StoreError};
use crate::events::Event;
use crate::lockout::Attempt;
use crate::mail::MailKind;
use crate::method::{Method, Verified};
use crate::service::{check_user, decode, encode, until, TwoFactorService};
use crate::store::{EnrollmentRecord, Revision};

/// The outcome of [`TwoFactorService::begin_login`].
#[derive(Debug)]
pub enum LoginStep {
    /// The user has no second factor: the login is complete.
    Complete(Verified),
    /// Ask for a code.
    Challenge(Challenge),
}

/// A matched answer to a login challenge (the challenge already consumed).
struct Answered {
    /// The method that matched.
    method: Method,
    /// The enrolment record read for the check.
    record: EnrollmentRecord,
    /// Its revision, for the compare-and-swap that records the success.
    revision: Option<Revision>,
    /// Whether the TOTP secret was sealed under an older key and should be re-sealed.
    reseal: bool,
}

impl TwoFactorService {
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
    /// [`Policy::challenge_max_attempts`]: crate::Policy::challenge_max_attempts
    /// [`Policy::lockout_threshold`]: crate::Policy::lockout_threshold
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
        let Answered {
            method,
            record,
            revision,
            reseal,
        } = match self.settle(user, &attempt, now, result).await {
            Ok(v) => v,
            Err(Error::InvalidCode { .. }) => {
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(u32::try_from(max - attempts).unwrap_or(0)),
                })
            }
            Err(e) => return Err(e),
        };

        self.update_from(user, Some((record, revision)), |r| {
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
    /// TOTP secret should be re-sealed, as an [`Answered`].
    async fn answer(
        &self,
        id: &str,
        challenge: &ChallengeRecord,
        attempt: &Attempt,
        code: &Secret,
        now: Timestamp,
    ) -> Result<Answered, Error> {
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
        Ok(Answered {
            method,
            record: rec,
            revision: rev,
            reseal,
        })
    }
}
