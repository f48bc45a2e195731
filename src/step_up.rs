//! Actions that need a fresh factor outside a login ([`TwoFactorService::disable`],
//! [`TwoFactorService::regenerate_backup_codes`]) and the user's [`Status`].

use crate::backup::{self, BackupCodeSet};
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::email_code::CodePurpose;
use crate::error::Error;
use crate::events::Event;
use crate::lockout::Attempt;
use crate::mail::MailKind;
use crate::method::Method;
use crate::service::{check_user, TwoFactorService};
use crate::store::EnrollmentRecord;

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

impl TwoFactorService {
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
    ///
    /// [`PasswordVerifier`]: crate::PasswordVerifier
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
