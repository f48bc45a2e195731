//! Emailed codes outside a login challenge: email 2FA setup, email verification at registration
//! and step-up codes, with the machinery shared with the login code (keyed code MACs, the send
//! reservation, rendering and sending mail, notifications).
//!
//! A code is mailed first and stored second: a failed send leaves the previous code as it was
//! and lifts the cooldown so the user may retry at once; a failed store leaves the new code
//! unusable (fail closed). Each check opens an attempt on the pending code (its own cap) and
//! against the user's run before comparing.

use crate::challenge::CodeRecord;
use crate::clock::until;
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::error::Error;
use crate::events::Event;
use crate::input::{check_address, check_user};
use crate::keyspace::{CodePurpose, UserKeys};
use crate::mail::{MailContent, MailContext, Message, SecurityAction};
use crate::method::Method;
use crate::phone::PhoneNumber;
use crate::service::TwoFactorService;
use crate::store::flow::{Reserved, SendRefused, SendSpec};
use crate::store::{EmailRecord, StoreKey};
use crate::text::{TextContent, TextMessage};

/// Where a code goes: an email address or, by text, a phone number.
#[derive(Clone, Copy)]
pub(crate) enum Channel<'a> {
    Email(&'a str),
    Text(&'a PhoneNumber),
}

impl Channel<'_> {
    /// What the pending code remembers of its destination.
    fn stored(&self) -> &[u8] {
        match self {
            Channel::Email(a) => a.as_bytes(),
            Channel::Text(p) => p.as_e164().as_bytes(),
        }
    }
}

/// What a code is for, whatever the channel: a login, or a purpose.
#[derive(Clone, Copy)]
pub(crate) enum CodeKind {
    Login,
    Purpose(CodePurpose),
}

impl TwoFactorService {
    /// [`Email::start_setup`](crate::service::Email::start_setup).
    pub(crate) async fn start_email_setup(&self, user: &str, address: &str) -> Result<(), Error> {
        check_user(user)?;
        check_address(address)?;
        let (rec, _) = self.load(user).await?;
        if rec.email.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.require_fresh_factor(user, &rec, self.now()).await?;
        self.send_purpose_code(user, Channel::Email(address), CodePurpose::EmailSetup)
            .await?;
        self.event(Event::FactorSetupStarted {
            user: user.to_owned(),
            method: Method::Email,
        });
        Ok(())
    }

    /// [`Email::confirm_setup`](crate::service::Email::confirm_setup).
    pub(crate) async fn confirm_email_setup(
        &self,
        user: &str,
        code: &str,
    ) -> Result<String, Error> {
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
        let ended = self.end_challenges(user).await;
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::Email,
        });
        ended.map(|()| address)
    }

    /// [`Email::send_verification_code`](crate::service::Email::send_verification_code).
    pub(crate) async fn send_verification_code(
        &self,
        user: &str,
        address: &str,
    ) -> Result<(), Error> {
        check_user(user)?;
        check_address(address)?;
        self.send_purpose_code(user, Channel::Email(address), CodePurpose::Registration)
            .await
    }

    /// [`Email::verify_registration_code`](crate::service::Email::verify_registration_code).
    pub(crate) async fn verify_registration_code(
        &self,
        user: &str,
        code: &str,
    ) -> Result<String, Error> {
        check_user(user)?;
        self.verify_purpose_code(user, code, CodePurpose::Registration)
            .await
    }

    /// [`Account::send_step_up_code`](crate::service::Account::send_step_up_code).
    pub(crate) async fn send_step_up_code(
        &self,
        user: &str,
        action: SecurityAction,
    ) -> Result<(), Error> {
        check_user(user)?;
        let (rec, _) = self.load(user).await?;
        let purpose = CodePurpose::StepUp(action);
        match (rec.email, rec.phone) {
            (Some(e), _) => {
                self.send_purpose_code(user, Channel::Email(&e.address), purpose)
                    .await
            }
            (None, Some(p)) => {
                self.send_purpose_code(user, Channel::Text(&p.number), purpose)
                    .await
            }
            (None, None) => Err(Error::NotEnrolled),
        }
    }

    /// Renders and sends a code by `to`'s channel.
    pub(crate) async fn send_code(
        &self,
        user: &str,
        to: Channel<'_>,
        kind: CodeKind,
        code: &str,
        expires_in: std::time::Duration,
    ) -> Result<(), Error> {
        let internal = || Error::Internal("no message for this code on this channel");
        match to {
            Channel::Email(address) => {
                let content = match kind {
                    CodeKind::Login => MailContent::LoginCode { code, expires_in },
                    CodeKind::Purpose(CodePurpose::EmailSetup) => {
                        MailContent::EmailSetupCode { code, expires_in }
                    }
                    CodeKind::Purpose(CodePurpose::Registration) => {
                        MailContent::RegistrationCode { code, expires_in }
                    }
                    CodeKind::Purpose(CodePurpose::StepUp(action)) => MailContent::SecurityCode {
                        code,
                        action,
                        expires_in,
                    },
                    CodeKind::Purpose(CodePurpose::SmsSetup) => return Err(internal()),
                    #[cfg(feature = "webauthn")]
                    CodeKind::Purpose(
                        CodePurpose::SecurityKeyRegistration | CodePurpose::SecurityKeyStepUp,
                    ) => return Err(internal()),
                };
                self.send_mail(user, address, content).await
            }
            Channel::Text(number) => {
                let content = match kind {
                    CodeKind::Login => TextContent::LoginCode { code, expires_in },
                    CodeKind::Purpose(CodePurpose::SmsSetup) => {
                        TextContent::PhoneSetupCode { code, expires_in }
                    }
                    CodeKind::Purpose(CodePurpose::StepUp(action)) => TextContent::SecurityCode {
                        code,
                        action,
                        expires_in,
                    },
                    CodeKind::Purpose(CodePurpose::EmailSetup | CodePurpose::Registration) => {
                        return Err(internal())
                    }
                    #[cfg(feature = "webauthn")]
                    CodeKind::Purpose(
                        CodePurpose::SecurityKeyRegistration | CodePurpose::SecurityKeyStepUp,
                    ) => return Err(internal()),
                };
                let body = self
                    .inner
                    .text_templates
                    .render(&self.inner.issuer, &content);
                let text = TextMessage::new(number.clone(), content.purpose(), body);
                self.text_sender()?.send(&text).await?;
                Ok(())
            }
        }
    }

    /// The keyed hash a code is stored as: bound to its scope (a purpose, or a challenge id)
    /// and the user.
    pub(crate) fn code_mac(&self, scope: &[u8], user: &str, code: &Secret) -> [u8; 32] {
        self.inner
            .keys
            .mac(&[b"code", scope, user.as_bytes(), code.expose().as_bytes()])
    }

    /// The send reservation for a code stored under `key`: its cooldown and the user's cap.
    pub(crate) fn send_spec<'a>(&self, cooldown: &'a StoreKey, now: Timestamp) -> SendSpec<'a> {
        let policy = &self.inner.policy;
        SendSpec::new(
            cooldown,
            now.saturating_add(policy.resend_cooldown),
            policy.max_sends,
            policy.send_window,
        )
    }

    /// Reserves a send; on refusal, says how long to wait. Returns the value of `challenge` when
    /// one is named.
    pub(crate) async fn reserve_send(
        &self,
        keys: &UserKeys,
        challenge: Option<&StoreKey>,
        cooldown: &StoreKey,
        now: Timestamp,
    ) -> Result<Option<Vec<u8>>, Error> {
        let spec = self.send_spec(cooldown, now);
        match self
            .inner
            .otp
            .reserve_send(keys.user(), challenge, &spec, now)
            .await?
        {
            Reserved::Granted(value) => Ok(value),
            Reserved::Refused(refused) => Err(refused_error(refused, now)),
            Reserved::NoChallenge => Err(Error::InvalidChallenge),
        }
    }

    /// Renders and sends one message.
    pub(crate) async fn send_mail(
        &self,
        user: &str,
        to: &str,
        kind: MailContent<'_>,
    ) -> Result<(), Error> {
        let name = self.inner.display_names.as_ref().and_then(|f| f(user));
        let ctx = MailContext::new(&self.inner.issuer, name.as_deref(), kind);
        let rendered = self.inner.templates.render(&ctx);
        let message = Message::new(to, kind.purpose(), rendered);
        self.inner.mailer.send(&message).await?;
        Ok(())
    }

    /// Sends a notification; a failure is logged, not returned (the action it reports is done).
    pub(crate) async fn notify(&self, user: &str, to: Option<&str>, kind: MailContent<'_>) {
        if let Some(to) = to {
            if let Err(e) = self.send_mail(user, to, kind).await {
                tracing::warn!(target: "twofactor", error = %e, "notification not delivered");
            }
        }
    }

    /// Texts a notice to the user's phone, when they have one and a text sender is configured;
    /// a failure is logged, not returned (the action it reports is done).
    pub(crate) async fn notify_text(&self, to: Option<&PhoneNumber>, content: TextContent<'_>) {
        let (Some(to), Some(sender)) = (to, self.inner.texts.as_deref()) else {
            return;
        };
        let body = self
            .inner
            .text_templates
            .render(&self.inner.issuer, &content);
        let text = TextMessage::new(to.clone(), content.purpose(), body);
        if let Err(e) = sender.send(&text).await {
            tracing::warn!(target: "twofactor", error = %e, "notification not delivered");
        }
    }

    /// Sends `code` by `to`'s channel; on failure lifts the cooldown, so that the user may
    /// retry at once.
    pub(crate) async fn deliver_code(
        &self,
        user: &str,
        to: Channel<'_>,
        cooldown: &StoreKey,
        kind: CodeKind,
        code: &Secret,
        expires_in: std::time::Duration,
    ) -> Result<(), Error> {
        if let Err(e) = self
            .send_code(user, to, kind, code.expose(), expires_in)
            .await
        {
            if let Err(lift) = self.inner.otp.delete(cooldown).await {
                tracing::warn!(target: "twofactor", error = %lift, "lifting a cooldown failed");
            }
            return Err(e);
        }
        Ok(())
    }

    pub(crate) async fn send_purpose_code(
        &self,
        user: &str,
        to: Channel<'_>,
        purpose: CodePurpose,
    ) -> Result<(), Error> {
        let policy = &self.inner.policy;
        let now = self.now();
        let keys = self.user_keys(user);
        let key = keys.pending(purpose);
        let cooldown = UserKeys::cooldown(&key);
        self.reserve_send(&keys, None, &cooldown, now).await?;
        let code = code::generate_numeric(policy.email_code_digits);
        let expires_at = now.saturating_add(policy.email_code_ttl);
        let kind = CodeKind::Purpose(purpose);
        self.deliver_code(user, to, &cooldown, kind, &code, policy.email_code_ttl)
            .await?;
        let record = CodeRecord {
            mac: self.code_mac(purpose.scope().as_bytes(), user, &code),
            expires_at,
        };
        self.inner
            .otp
            .store_code(&key, Some((to.stored(), expires_at)), &record.encode(), now)
            .await?;
        self.event(Event::CodeSent {
            user: user.to_owned(),
        });
        Ok(())
    }

    /// Checks a code sent for `purpose`; on success it is consumed and its address returned.
    pub(crate) async fn verify_purpose_code(
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
        let keys = self.user_keys(user);
        self.check_purpose_code(user, &keys, &code, purpose, now)
            .await
    }

    /// Opens an attempt on the pending code of `purpose`, compares, and settles: on a match the
    /// code is consumed and its address returned.
    pub(crate) async fn check_purpose_code(
        &self,
        user: &str,
        keys: &UserKeys,
        code: &Secret,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> Result<String, Error> {
        let key = keys.pending(purpose);
        // A registration code proves an address, not a factor: its attempts count on a run of
        // their own, so that a pass neither ends the run that guards the factors nor opens the
        // re-authentication window (see `UserKeys::address_checks`).
        let address_checks;
        let keys = if purpose == CodePurpose::Registration {
            address_checks = keys.address_checks();
            &address_checks
        } else {
            keys
        };
        let max = self.inner.policy.code_max_attempts;
        let attempt = match self
            .open_attempt(keys, Some((&key, max)), Error::NothingPending, now)
            .await
        {
            Err(Error::TooManyAttempts) => {
                // Spent: a new code may be sent, with a budget of its own under the user's run.
                self.inner.otp.delete(&key).await?;
                return Err(Error::TooManyAttempts);
            }
            other => other?,
        };
        let pending = attempt.challenge.as_ref().ok_or(Error::NothingPending)?;
        let stored = match &pending.code {
            Some(bytes) => CodeRecord::decode(bytes)?,
            None => return Err(Error::NothingPending),
        };
        let expected = self.code_mac(purpose.scope().as_bytes(), user, code);
        if stored.expires_at <= now || !code::ct_eq(&expected, &stored.mac) {
            self.fail_attempt(user, keys, &attempt, now).await;
            if stored.expires_at <= now {
                return Err(Error::Expired);
            }
            return Err(Error::InvalidCode {
                attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
            });
        }
        let address = String::from_utf8(pending.value.clone())
            .map_err(|_| Error::Store(crate::error::StoreError::corrupt("pending address")))?;
        self.pass_attempt(
            user,
            keys,
            &attempt,
            (Some(&key), None),
            Error::CodeReused,
            now,
        )
        .await?;
        Ok(address)
    }
}

/// The error for a refused send.
pub(crate) fn refused_error(refused: SendRefused, now: Timestamp) -> Error {
    match refused {
        SendRefused::Cooldown { until: t } => Error::Cooldown {
            retry_after: until(t, now),
        },
        SendRefused::Capped { until: t } => Error::RateLimited {
            retry_after: until(t, now),
        },
    }
}
