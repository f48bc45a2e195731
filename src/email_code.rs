//! Emailed codes outside a login challenge: email 2FA setup, email verification at registration
//! and step-up codes, with the machinery shared with the login code (keyed code MACs, cooldown
//! and send cap, rendering and sending mail, notifications).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::error::Error;
use crate::events::Event;
use crate::keys::hex;
use crate::mail::{MailContext, MailKind, Mailer, Message};
use crate::method::Method;
use crate::service::{check_address, check_user, decode, encode, until, TwoFactorService};
use crate::store::{EmailRecord, StoreKey};

/// Purposes of codes sent outside a login challenge.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodePurpose {
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

/// A code pending confirmation (email setup, registration, step-up).
#[derive(Serialize, Deserialize)]
struct PendingCode {
    mac: String,
    address: Option<String>,
    expires_at: Timestamp,
}

/// The email code of a login challenge.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChallengeCode {
    pub(crate) mac: String,
    pub(crate) expires_at: Timestamp,
}

impl TwoFactorService {
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

    pub(crate) fn code_mac(&self, scope: &str, user: &str, code: &Secret) -> String {
        hex(&self.inner.keys.mac(&[
            b"code",
            scope.as_bytes(),
            user.as_bytes(),
            code.expose().as_bytes(),
        ]))
    }

    /// Takes a cooldown slot and a send-cap slot; on refusal, says how long to wait.
    pub(crate) async fn reserve_send(
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
    pub(crate) async fn notify(&self, user: &str, to: Option<&str>, kind: MailKind<'_>) {
        if let Some(to) = to {
            if let Err(e) = self.send_mail(user, to, kind).await {
                tracing::warn!(target: "twofactor", error = %e, "notification not delivered");
            }
        }
    }

    /// Mails a fresh code and then stores it under `code_key`, replacing the previous one. On a
    /// failed send the previous code stays as it was and the cooldown is lifted, so that the user
    /// may retry at once; on a failed store the new code is unusable (fail closed).
    pub(crate) async fn store_and_send<T: Serialize>(
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
    pub(crate) async fn match_purpose_code(
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
}
