//! Fresh-factor checks outside a login: step-up answers, reauthentication, and the actions that
//! need them ([`Account::disable`](crate::service::Account::disable); backup codes regenerate
//! through the same check in the backup module).

use crate::backup;
use crate::challenge::CodeRecord;
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::keyspace::{CodePurpose, SECURITY_ACTIONS, STEP_UP};
use crate::mail::{MailContent, SecurityAction};
use crate::method::Method;
use crate::service::TwoFactorService;
use crate::store::flow::OpenAttempt;
use crate::store::{EnrollmentRecord, Revision, StoreKey};

/// What a step-up is answered with: a code, or a security key's assertion (the JSON of
/// `navigator.credentials.get`'s result, after
/// [`security_keys().start_step_up`](crate::service::SecurityKeys::start_step_up)).
pub(crate) enum Answer {
    Code(Secret),
    #[cfg(feature = "webauthn")]
    Key(crate::security_key::Assertion),
}

impl Answer {
    /// Reads the input: a JSON object is an assertion (with the `webauthn` feature), anything
    /// else a code.
    ///
    /// # Errors
    /// [`Error::MalformedCode`] for input that is neither.
    pub(crate) fn parse(input: &str) -> Result<Self, Error> {
        #[cfg(feature = "webauthn")]
        if crate::security_key::Assertion::looks_like(input) {
            return crate::security_key::Assertion::parse(input).map(Answer::Key);
        }
        code::normalize(input).map(Answer::Code)
    }
}

/// What a passed step-up takes with it when it settles.
enum Taken {
    Nothing,
    /// The pending step-up code.
    PendingCode,
    /// The TOTP step.
    Step(u64),
}

impl TwoFactorService {
    /// Reads a step-up answer (see [`Answer::parse`]), for the flows that need a fresh factor.
    pub(crate) fn step_up_answer(input: &str) -> Result<Answer, Error> {
        Answer::parse(input)
    }

    /// Checks a fresh factor outside a login (a TOTP code, a step-up email code, or a backup
    /// code), and the password first when `password` is given: one attempt, opened before any
    /// comparison (on the pending step-up code, when the input may be one) and settled.
    ///
    /// A step-up code passes only for the change it was sent for, `action`; `None` (a
    /// reauthentication, which proves the factor and changes nothing) takes a code sent for any.
    pub(crate) async fn step_up(
        &self,
        user: &str,
        (rec, rev): (&EnrollmentRecord, Option<Revision>),
        answer: &Answer,
        action: Option<SecurityAction>,
        password: Option<bool>,
        now: Timestamp,
    ) -> Result<Method, Error> {
        // Only a security key's answer saves the record, from this revision.
        #[cfg(not(feature = "webauthn"))]
        let _ = rev;
        #[cfg_attr(
            not(feature = "webauthn"),
            allow(clippy::infallible_destructuring_match)
        )]
        let code = match answer {
            Answer::Code(code) => code,
            #[cfg(feature = "webauthn")]
            Answer::Key(assertion) => {
                return self
                    .step_up_with_key(user, (rec, rev), assertion, password, now)
                    .await
            }
        };
        let policy = &self.inner.policy;
        let keys = self.user_keys(user);
        let backup_code = backup::canonical(code.expose());
        let pending = keys.pending(STEP_UP);
        let may_be_email = backup_code.is_none()
            && (rec.email.is_some() || rec.phone.is_some())
            && code::is_numeric(code, policy.email_code_digits);
        let attempt = if may_be_email {
            let opened = self
                .open_attempt(
                    &keys,
                    Some((&pending, policy.code_max_attempts)),
                    Error::NothingPending,
                    now,
                )
                .await;
            match opened {
                Err(Error::NothingPending | Error::TooManyAttempts) if rec.totp.is_some() => {
                    self.open_attempt(&keys, None, Error::NothingPending, now)
                        .await?
                }
                Err(Error::NothingPending) => {
                    return Err(Error::InvalidCode {
                        attempts_remaining: None,
                    })
                }
                other => other?,
            }
        } else {
            self.open_attempt(&keys, None, Error::NothingPending, now)
                .await?
        };
        let matched = self
            .match_step_up(
                user,
                rec,
                code,
                backup_code.as_ref(),
                &attempt,
                (action, password),
                now,
            )
            .await;
        let (method, taken) = match matched {
            Ok(Some(m)) => m,
            outcome => {
                self.fail_attempt(user, &keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: None,
                });
            }
        };
        let (challenge, step) = match taken {
            Taken::Nothing => (None, None),
            Taken::PendingCode => (Some(&pending), None),
            Taken::Step(step) => (None, Some(step)),
        };
        match self
            .pass_attempt(
                user,
                &keys,
                &attempt,
                (challenge, step),
                Error::CodeReused,
                now,
            )
            .await
        {
            Err(Error::CodeReused) if step.is_some() => {
                let to = rec.email.as_ref().map(|e| e.address.as_str());
                self.notify(user, to, MailContent::TotpReplayRejected).await;
                Err(Error::CodeReused)
            }
            Err(e) => Err(e),
            Ok(()) => {
                // A passed check cancels a pending account recovery.
                if rec.recovery.is_some() {
                    self.recovery().cancel(user).await?;
                }
                Ok(method)
            }
        }
    }

    /// Compares the input of an opened step-up attempt: `None` when nothing matched. A backup
    /// code is redeemed here (only an existing code passes). The pending step-up code matches
    /// only when it was sent for `action` (for any, when `action` is `None`).
    #[allow(clippy::too_many_arguments)]
    async fn match_step_up(
        &self,
        user: &str,
        rec: &EnrollmentRecord,
        code: &Secret,
        backup_code: Option<&Secret>,
        attempt: &OpenAttempt,
        (action, password): (Option<SecurityAction>, Option<bool>),
        now: Timestamp,
    ) -> Result<Option<(Method, Taken)>, Error> {
        if password == Some(false) {
            return Err(Error::InvalidPassword);
        }
        if let Some(canonical) = backup_code {
            let Some(remaining) = self.redeem_backup(user, canonical, now).await? else {
                return Ok(None);
            };
            self.event(Event::BackupCodeUsed {
                user: user.to_owned(),
                remaining,
            });
            return Ok(Some((Method::BackupCode, Taken::Nothing)));
        }
        if let Some(bytes) = attempt.challenge.as_ref().and_then(|p| p.code.as_deref()) {
            let stored = CodeRecord::decode(bytes)?;
            // Every accepted change is compared, whichever matches.
            let mut matched = false;
            for sent_for in SECURITY_ACTIONS {
                if action.is_none_or(|a| a == sent_for) {
                    let scope = CodePurpose::StepUp(sent_for).scope();
                    let expected = self.code_mac(scope.as_bytes(), user, code);
                    matched |= code::ct_eq(&expected, &stored.mac);
                }
            }
            if stored.expires_at > now && matched {
                let method = if rec.email.is_some() {
                    Method::Email
                } else {
                    Method::Sms
                };
                return Ok(Some((method, Taken::PendingCode)));
            }
        }
        if let Some(totp) = &rec.totp {
            let params = Self::totp_params(totp)?;
            if let Some((step, _)) =
                self.match_totp(user, &totp.sealed_secret, params, code, now)?
            {
                return Ok(Some((Method::Totp, Taken::Step(step))));
            }
        }
        Ok(None)
    }

    /// [`Account::reauthenticate`](crate::service::Account::reauthenticate).
    pub(crate) async fn reauthenticate(&self, user: &str, code: &str) -> Result<Method, Error> {
        check_user(user)?;
        let code = Answer::parse(code)?;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        let method = self
            .step_up(user, (&rec, rev), &code, None, None, now)
            .await?;
        self.event(Event::Reauthenticated {
            user: user.to_owned(),
            method,
        });
        Ok(method)
    }

    /// Refuses a change to the factors of an account that has one, unless the user passed a
    /// second-factor check within [`Policy::reauth_window`](crate::Policy::reauth_window).
    pub(crate) async fn require_fresh_factor(
        &self,
        user: &str,
        rec: &EnrollmentRecord,
        now: Timestamp,
    ) -> Result<(), Error> {
        if !rec.is_enabled() {
            return Ok(());
        }
        let state = self
            .inner
            .otp
            .user_state(self.user_keys(user).user(), &self.limits(), now)
            .await?;
        let window = self.inner.policy.reauth_window;
        let last = rec.last_verified_at.max(state.last_verified_at);
        match last {
            Some(t) if t <= now && t.saturating_add(window) > now => Ok(()),
            _ => Err(Error::ReauthRequired),
        }
    }

    /// [`Account::disable`](crate::service::Account::disable).
    pub(crate) async fn disable(
        &self,
        user: &str,
        password: &str,
        code: &str,
    ) -> Result<(), Error> {
        check_user(user)?;
        self.password_verifier()?;
        let (rec, rev) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        let action = SecurityAction::DisableTwoFactor;
        self.confirm_with_password(user, (&rec, rev), password, code, action)
            .await?;
        self.turn_off(user, &rec).await
    }

    /// The check of [`disable`](crate::service::Account::disable) and the other changes that need the password
    /// besides a fresh factor: the password (under its own limit; a wrong one also counts
    /// against the code step's ceiling) and a code or security key assertion (a step-up code
    /// only when sent for `action`).
    pub(crate) async fn confirm_with_password(
        &self,
        user: &str,
        loaded: (&EnrollmentRecord, Option<Revision>),
        password: &str,
        code: &str,
        action: SecurityAction,
    ) -> Result<Method, Error> {
        let verifier = self.password_verifier()?;
        let now = self.now();
        let answer = Answer::parse(code)?;
        let run = self.user_keys(user).password_run();
        let password_ok = self
            .check_password_with(verifier, user, password, &run, now)
            .await?;
        self.step_up(user, loaded, &answer, Some(action), Some(password_ok), now)
            .await
    }

    /// The host's password verifier.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when none is configured.
    pub(crate) fn password_verifier(&self) -> Result<&dyn crate::service::PasswordVerifier, Error> {
        self.inner
            .password
            .as_deref()
            .ok_or_else(|| Error::InvalidConfig("no password verifier configured".into()))
    }

    /// Removes every factor and backup code of the user whose record was `rec`, and tells them.
    pub(crate) async fn turn_off(&self, user: &str, rec: &EnrollmentRecord) -> Result<(), Error> {
        self.inner.enrollments.remove(user).await?;
        let ended = self.end_challenges(user).await;
        self.event(Event::FactorDisabled {
            user: user.to_owned(),
        });
        let to = rec.email.as_ref().map(|e| e.address.as_str());
        self.notify(user, to, MailContent::TwoFactorDisabled).await;
        ended
    }

    /// Checks the password with the host's verifier, under the passwords' limit of their own,
    /// counted on `run` (one count per flow that takes a password, so that one flow's guesses
    /// never lock another): counted before the check, ended only by a correct password in the
    /// same flow (no code, however right, resets it).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a verifier; [`Error::Locked`] past the limit;
    /// [`Error::PasswordCheck`]; store errors.
    pub(crate) async fn check_password(
        &self,
        user: &str,
        password: &str,
        run: &StoreKey,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let verifier = self.password_verifier()?;
        self.check_password_with(verifier, user, password, run, now)
            .await
    }

    async fn check_password_with(
        &self,
        verifier: &dyn crate::service::PasswordVerifier,
        user: &str,
        password: &str,
        run: &StoreKey,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let policy = &self.inner.policy;
        let tried = self
            .inner
            .otp
            .increment(run, now.saturating_add(policy.failure_window), now)
            .await?;
        if tried > u64::from(policy.lockout_threshold) {
            return Err(Error::Locked {
                retry_after: policy.failure_window,
            });
        }
        let password_ok = verifier
            .verify(user, password)
            .await
            .map_err(Error::PasswordCheck)?;
        if password_ok {
            self.inner.otp.delete(run).await?;
        }
        Ok(password_ok)
    }
}
