//! Delivery: the [`Mailer`] trait, the [`Message`] it sends, and the built-in templates.
//!
//! The service decides *what* to say ([`MailContent`]), a [`Templates`] implementation decides *how*
//! (subject, plain text, HTML), and a [`Mailer`] delivers it. [`EnglishTemplates`] is the default
//! and [`GermanTemplates`] the example of a translation; [`RecordingMailer`](crate::testing::RecordingMailer) keeps messages for
//! tests and [`LogMailer`] writes them to the log during development.
//!
//! A mailer of your own is one async method; it gets the rendered message and must never log
//! its text, which holds a code:
//!
//! ```
//! use std::time::Duration;
//! use twofactor::async_trait;
//! use twofactor::error::DeliveryError;
//! use twofactor::mail::{
//!     EnglishTemplates, MailContent, MailContext, Mailer, Message, MessagePurpose, Templates,
//! };
//!
//! struct Outbox;
//!
//! #[async_trait]
//! impl Mailer for Outbox {
//!     async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
//!         // Hand `message.to`, `message.subject`, `message.text` and `message.html` to the
//!         // provider here; a refused address is `DeliveryError::permanent`.
//!         if message.to.ends_with("@invalid") {
//!             return Err(DeliveryError::permanent("unknown recipient"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let content = MailContent::LoginCode { code: "123456", expires_in: Duration::from_secs(600) };
//! let rendered = EnglishTemplates.render(&MailContext::new("Acme", None, content));
//! let message = Message::new("alice@example.com", MessagePurpose::LoginCode, rendered);
//! assert!(message.text.contains("123 456") || message.text.contains("123456"));
//! // `Debug` never shows the body, so a logged message leaks no code.
//! assert!(!format!("{message:?}").contains("123"));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! assert!(Outbox.send(&message).await.is_ok());
//! # });
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::DeliveryError;

mod notices;
#[cfg(feature = "smtp")]
mod smtp;
mod templates;

pub use crate::code::spaced;
pub use notices::{AccountNotice, AccountNotices};

#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use smtp::{SmtpMailer, SmtpMailerBuilder, SmtpTls};
pub use templates::{
    escape_html, EnglishTemplates, GermanTemplates, Rendered, StandardMessage, Templates,
};

/// Why a message is sent, without its data: [`Message::purpose`], for a [`Mailer`] that routes,
/// tags or counts messages. [`MailContent::purpose`] gives it for a content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessagePurpose {
    /// A code for the second step of a login.
    LoginCode,
    /// A code proving an address before it becomes a second factor.
    EmailSetupCode,
    /// A code verifying an address at registration.
    RegistrationCode,
    /// A code, sent by text, proving a phone number before it becomes a second factor.
    PhoneSetupCode,
    /// Two-factor authentication was turned off.
    TwoFactorDisabled,
    /// The backup codes were replaced by a new set.
    BackupCodesRegenerated,
    /// A TOTP code that had already been used was submitted again.
    TotpReplayRejected,
    /// A code confirming a security change (turning 2FA off, new backup codes, a new factor).
    SecurityCode,
    /// A second factor was added to the account.
    FactorAdded,
    /// A second factor was removed while others remain.
    FactorRemoved,
    /// A device was trusted to sign in without a code.
    DeviceTrusted,
    /// An account recovery was asked for.
    RecoveryRequested,
    /// An account recovery takes effect soon.
    RecoveryReminder,
}

/// The security change a [`MailContent::SecurityCode`] confirms, named in its message. The code
/// is bound to it: see [`Account::send_step_up_code`](crate::service::Account::send_step_up_code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityAction {
    /// Turning two-factor authentication off.
    DisableTwoFactor,
    /// Replacing the backup codes.
    RegenerateBackupCodes,
    /// Adding a second factor.
    AddFactor,
}

/// What a message says, with its data (the code, how long it is valid, the change it confirms):
/// what the service asks a [`Templates`] implementation to render. Its `Debug` prints only its
/// [`MessagePurpose`], never the code.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum MailContent<'a> {
    /// A login code.
    LoginCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// An email-setup code.
    EmailSetupCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// A registration verification code.
    RegistrationCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// Notification: two-factor authentication disabled.
    TwoFactorDisabled,
    /// Notification: backup codes regenerated.
    BackupCodesRegenerated,
    /// Notification: a replayed TOTP code was rejected.
    TotpReplayRejected,
    /// A code confirming a security change, naming it.
    SecurityCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// The change it confirms.
        action: SecurityAction,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// Notification: a second factor was added.
    FactorAdded {
        /// The factor added.
        method: crate::method::Method,
    },
    /// Notification: a second factor was removed (others remain; turning two-factor
    /// authentication off altogether is [`TwoFactorDisabled`](Self::TwoFactorDisabled)).
    FactorRemoved {
        /// The factor removed.
        method: crate::method::Method,
    },
    /// Notification: a device was trusted to sign in without a code.
    DeviceTrusted,
    /// Notification: an account recovery was asked for; two-factor authentication will be
    /// turned off after the waiting period unless the user signs in with a factor.
    RecoveryRequested,
    /// Notification: a pending account recovery takes effect soon.
    RecoveryReminder,
}

impl MailContent<'_> {
    /// Why the message is sent: the content without its data.
    pub fn purpose(&self) -> MessagePurpose {
        match self {
            MailContent::LoginCode { .. } => MessagePurpose::LoginCode,
            MailContent::EmailSetupCode { .. } => MessagePurpose::EmailSetupCode,
            MailContent::RegistrationCode { .. } => MessagePurpose::RegistrationCode,
            MailContent::TwoFactorDisabled => MessagePurpose::TwoFactorDisabled,
            MailContent::BackupCodesRegenerated => MessagePurpose::BackupCodesRegenerated,
            MailContent::TotpReplayRejected => MessagePurpose::TotpReplayRejected,
            MailContent::SecurityCode { .. } => MessagePurpose::SecurityCode,
            MailContent::FactorAdded { .. } => MessagePurpose::FactorAdded,
            MailContent::FactorRemoved { .. } => MessagePurpose::FactorRemoved,
            MailContent::DeviceTrusted => MessagePurpose::DeviceTrusted,
            MailContent::RecoveryRequested => MessagePurpose::RecoveryRequested,
            MailContent::RecoveryReminder => MessagePurpose::RecoveryReminder,
        }
    }
}

impl fmt::Debug for MailContent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.purpose())
    }
}

/// Everything a template may use.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct MailContext<'a> {
    /// The service's issuer name (your product). Not HTML-safe: escape it.
    pub issuer: &'a str,
    /// The recipient's display name, when the host supplied one. Not HTML-safe: escape it.
    pub display_name: Option<&'a str>,
    /// What to say.
    pub content: MailContent<'a>,
}

impl<'a> MailContext<'a> {
    /// A context from its parts.
    pub fn new(issuer: &'a str, display_name: Option<&'a str>, content: MailContent<'a>) -> Self {
        MailContext {
            issuer,
            display_name,
            content,
        }
    }
}

/// An addressed message, ready to deliver. Its `Debug` omits the bodies, which may hold a code.
#[derive(Clone)]
#[non_exhaustive]
pub struct Message {
    /// Recipient address.
    pub to: String,
    /// Why it is sent.
    pub purpose: MessagePurpose,
    /// Subject line.
    pub subject: String,
    /// Plain-text part (may contain a code: never log it).
    pub text: String,
    /// HTML part (may contain a code: never log it).
    pub html: String,
}

impl Message {
    /// A message from a rendered body.
    pub fn new(to: impl Into<String>, purpose: MessagePurpose, rendered: Rendered) -> Self {
        Message {
            to: to.into(),
            purpose,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("purpose", &self.purpose)
            .field("subject", &self.subject)
            .field("body", &"[redacted]")
            .finish()
    }
}

/// Delivers messages. Implement it for your email provider, or use a shipped one.
///
/// Return an error whenever the message may not have been accepted for delivery: the service then
/// fails closed, leaves no usable code behind and starts no cooldown.
///
/// The trait is async through [`async_trait`](crate::async_trait): the `impl` needs the attribute
/// too (without it the compiler answers E0195, "lifetime parameters do not match"). An
/// `Arc<M>` or a `Box<dyn Mailer>` is a `Mailer` as well.
///
/// ```
/// use twofactor::{async_trait, error::DeliveryError, mail::Mailer, mail::Message};
///
/// /// Hands each message to the host's own email service.
/// struct ProviderMailer {
///     outbox: tokio::sync::mpsc::Sender<(String, String, String)>,
/// }
///
/// #[async_trait]
/// impl Mailer for ProviderMailer {
///     async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
///         let mail = (message.to.clone(), message.subject.clone(), message.text.clone());
///         // An error means "maybe not accepted": the service then leaves no usable code.
///         self.outbox.send(mail).await.map_err(DeliveryError::transient)
///     }
/// }
/// # let (tx, _rx) = tokio::sync::mpsc::channel(1);
/// # let _ = twofactor::TwoFactorService::builder().mailer(ProviderMailer { outbox: tx });
/// ```
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message.
    async fn send(&self, message: &Message) -> Result<(), DeliveryError>;
}

/// Writes each message, body included, to the log at INFO level (target `twofactor::mail`).
///
/// **WARNING:** for development only. It logs codes, which is exactly what production must never
/// do.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "twofactor::mail",
            to = %message.to,
            subject = %message.subject,
            "development mailer (not delivered):\n{}",
            message.text
        );
        Ok(())
    }
}
