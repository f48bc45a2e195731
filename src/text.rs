//! The text channel (SMS or any short-message service) beside email: the [`TextSender`] trait,
//! the [`TextMessage`] it sends, short [`TextTemplates`], and the shipped senders
//! [`RecordingTextSender`](crate::testing::RecordingTextSender) (tests) and [`LogTextSender`] (development).
//!
//! **NIST SP 800-63B §5.1.3.3 makes SMS (the public telephone network) a *restricted*
//! authenticator**: numbers can be ported or SIM-swapped, and messages intercepted. Offer a text
//! code as a convenience beside a stronger factor, and tell users that a TOTP authenticator
//! app, or a security key, is stronger. The crate ships no vendor SDK: a sender is a few lines
//! over the vendor's HTTP API (see `examples/text_http.rs`).
//!
//! Texts carry codes (a sign-in code, a phone-setup code, a step-up code) and the account
//! recovery notices; other notifications about account changes go by email.
//!
//! ```
//! use twofactor::async_trait;
//! use twofactor::error::DeliveryError;
//! use twofactor::text::{PhoneNumber, TextMessage, TextSender};
//!
//! /// A sender over a vendor's HTTP API (the request itself left out).
//! struct Vendor;
//!
//! #[async_trait]
//! impl TextSender for Vendor {
//!     async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
//!         let _to = text.to.as_e164(); // "+4915112345678", what vendors take
//!         Ok(())
//!     }
//! }
//!
//! let number = PhoneNumber::parse("+49 151 1234 5678")?;
//! assert_eq!(number.as_e164(), "+4915112345678");
//! // Shown to the user (and in `Debug`) masked.
//! assert!(!number.masked().contains("1234"));
//! # Ok::<(), twofactor::error::PhoneError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::DeliveryError;
use crate::mail::{MessagePurpose, SecurityAction, StandardMessage};
pub use crate::phone::{PhoneNumber, MAX_PHONE_DIGITS, MIN_PHONE_DIGITS};

/// What a text says, with its data. Its `Debug` prints only its [`MessagePurpose`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum TextContent<'a> {
    /// A sign-in code.
    LoginCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// A code proving the phone number before it becomes a second factor.
    PhoneSetupCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// A code confirming a security change.
    SecurityCode {
        /// The code (secret: only for the message body).
        code: &'a str,
        /// The change it confirms.
        action: SecurityAction,
        /// How long it is valid.
        expires_in: Duration,
    },
    /// Notification: an account recovery was asked for (see
    /// [`recovery().request`](crate::service::Recovery::request)).
    RecoveryRequested,
    /// Notification: a pending account recovery takes effect soon.
    RecoveryReminder,
}

impl TextContent<'_> {
    /// Why the text is sent: the content without its data.
    pub fn purpose(&self) -> MessagePurpose {
        match self {
            TextContent::LoginCode { .. } => MessagePurpose::LoginCode,
            TextContent::PhoneSetupCode { .. } => MessagePurpose::PhoneSetupCode,
            TextContent::SecurityCode { .. } => MessagePurpose::SecurityCode,
            TextContent::RecoveryRequested => MessagePurpose::RecoveryRequested,
            TextContent::RecoveryReminder => MessagePurpose::RecoveryReminder,
        }
    }
}

impl fmt::Debug for TextContent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.purpose())
    }
}

/// Turns a [`TextContent`] into the body of a short message (one SMS segment where it can).
pub trait TextTemplates: Send + Sync + 'static {
    /// Renders one text; `issuer` is the service's product name.
    fn render(&self, issuer: &str, content: &TextContent<'_>) -> String;
}

/// What a text says, without its wording: shared by the built-in languages.
#[derive(Clone, Copy)]
enum Wording {
    Login,
    PhoneSetup,
    Disable,
    Regenerate,
    Change,
    RecoveryRequested,
    RecoveryReminder,
}

/// The code, the wording and the expiry in minutes of a content; no code for a notice.
fn parts<'a>(content: &TextContent<'a>) -> (Option<&'a str>, Wording, u64) {
    let (code, wording, expires_in) = match *content {
        TextContent::LoginCode { code, expires_in } => (code, Wording::Login, expires_in),
        TextContent::PhoneSetupCode { code, expires_in } => (code, Wording::PhoneSetup, expires_in),
        TextContent::RecoveryRequested => {
            return (None, Wording::RecoveryRequested, 0);
        }
        TextContent::RecoveryReminder => return (None, Wording::RecoveryReminder, 0),
        TextContent::SecurityCode {
            code,
            action,
            expires_in,
        } => {
            let wording = match action {
                SecurityAction::DisableTwoFactor => Wording::Disable,
                SecurityAction::RegenerateBackupCodes => Wording::Regenerate,
                _ => Wording::Change,
            };
            (code, wording, expires_in)
        }
    };
    (Some(code), wording, StandardMessage::minutes(expires_in))
}

/// The built-in English texts (the default).
///
/// ```
/// use std::time::Duration;
/// use twofactor::{text::EnglishTextTemplates, text::TextContent, text::TextTemplates};
///
/// let body = EnglishTextTemplates.render(
///     "Acme",
///     &TextContent::LoginCode { code: "042917", expires_in: Duration::from_secs(300) },
/// );
/// assert_eq!(body, "Acme: 042917 is your sign-in code. It expires in 5 min. Never share it.");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EnglishTextTemplates;

impl TextTemplates for EnglishTextTemplates {
    fn render(&self, issuer: &str, content: &TextContent<'_>) -> String {
        let (code, wording, m) = parts(content);
        let what = match wording {
            Wording::Login => "your sign-in code",
            Wording::PhoneSetup => "your code to confirm this phone",
            Wording::Disable => "your code to turn off two-factor sign-in",
            Wording::Regenerate => "your code for new backup codes",
            Wording::Change => "your code to confirm a security change",
            Wording::RecoveryRequested => {
                "account recovery requested: two-factor sign-in will be turned off after a \
                 waiting period. Not you? Sign in now to stop it."
            }
            Wording::RecoveryReminder => {
                "a pending account recovery turns two-factor sign-in off soon. Not you? Sign in \
                 now to stop it."
            }
        };
        match code {
            Some(code) => {
                format!("{issuer}: {code} is {what}. It expires in {m} min. Never share it.")
            }
            None => format!("{issuer}: {what}"),
        }
    }
}

/// The built-in German texts.
///
/// ```
/// use std::time::Duration;
/// use twofactor::{text::GermanTextTemplates, text::TextContent, text::TextTemplates};
///
/// let body = GermanTextTemplates.render(
///     "Acme",
///     &TextContent::LoginCode { code: "042917", expires_in: Duration::from_secs(300) },
/// );
/// assert!(body.starts_with("Acme: 042917 ist Ihr Anmeldecode."));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GermanTextTemplates;

impl TextTemplates for GermanTextTemplates {
    fn render(&self, issuer: &str, content: &TextContent<'_>) -> String {
        let (code, wording, m) = parts(content);
        let what = match wording {
            Wording::Login => "Ihr Anmeldecode",
            Wording::PhoneSetup => "Ihr Code zur Bestätigung dieser Nummer",
            Wording::Disable => "Ihr Code zum Ausschalten der Zwei-Faktor-Anmeldung",
            Wording::Regenerate => "Ihr Code für neue Backup-Codes",
            Wording::Change => "Ihr Code zur Bestätigung einer Sicherheitsänderung",
            Wording::RecoveryRequested => {
                "Kontowiederherstellung angefordert: Die Zwei-Faktor-Anmeldung wird bald \
                 ausgeschaltet. Nicht Sie? Melden Sie sich jetzt an."
            }
            Wording::RecoveryReminder => {
                "Eine laufende Kontowiederherstellung schaltet die Zwei-Faktor-Anmeldung bald \
                 aus. Nicht Sie? Melden Sie sich jetzt an."
            }
        };
        match code {
            Some(code) => format!(
                "{issuer}: {code} ist {what}. Gültig {m} Min. Geben Sie ihn niemandem weiter."
            ),
            None => format!("{issuer}: {what}"),
        }
    }
}

/// An addressed text, ready to deliver. Its `Debug` masks the number and omits the body, which
/// holds a code.
#[derive(Clone)]
#[non_exhaustive]
pub struct TextMessage {
    /// Recipient (use [`PhoneNumber::as_e164`] for the vendor's API).
    pub to: PhoneNumber,
    /// Why it is sent.
    pub purpose: MessagePurpose,
    /// The text (holds a code: never log it).
    pub body: String,
}

impl TextMessage {
    /// A text from its parts.
    pub fn new(to: PhoneNumber, purpose: MessagePurpose, body: String) -> Self {
        TextMessage { to, purpose, body }
    }
}

impl fmt::Debug for TextMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextMessage")
            .field("to", &self.to)
            .field("purpose", &self.purpose)
            .field("body", &"[redacted]")
            .finish()
    }
}

/// Delivers texts (SMS or another short-message channel). Implement it over your vendor's API.
///
/// **WARNING:** NIST SP 800-63B (§5.1.3.3) makes SMS a *restricted* authenticator (SIM swaps,
/// number porting, interception). A TOTP authenticator app, or a security key, is stronger:
/// offer a text code beside them, not instead of them.
///
/// As with a [`Mailer`](crate::mail::Mailer), return an error whenever the text may not have been
/// accepted: the service then fails closed, leaves no usable code behind and lifts the
/// cooldown. The trait is async through [`async_trait`](crate::async_trait); an `Arc<T>` or a
/// `Box<dyn TextSender>` is a `TextSender` as well.
///
/// ```
/// use twofactor::{async_trait, error::DeliveryError, text::TextMessage, text::TextSender};
///
/// struct Vendor {
///     outbox: tokio::sync::mpsc::Sender<(String, String)>,
/// }
///
/// #[async_trait]
/// impl TextSender for Vendor {
///     async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
///         let sms = (text.to.as_e164().to_owned(), text.body.clone());
///         self.outbox.send(sms).await.map_err(DeliveryError::transient)
///     }
/// }
/// # let (tx, _rx) = tokio::sync::mpsc::channel(1);
/// # let _ = twofactor::TwoFactorService::builder().text_sender(Vendor { outbox: tx });
/// ```
#[async_trait]
pub trait TextSender: Send + Sync + 'static {
    /// Sends one text.
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError>;
}

#[async_trait]
impl<T: TextSender + ?Sized> TextSender for Arc<T> {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        (**self).send(text).await
    }
}

#[async_trait]
impl<T: TextSender + ?Sized> TextSender for Box<T> {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        (**self).send(text).await
    }
}

/// Writes each text, body included, to the log at INFO level (target `twofactor::text`), the
/// number masked.
///
/// **WARNING:** for development only, like [`LogMailer`](crate::mail::LogMailer): it logs codes,
/// which is exactly what production must never do.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogTextSender;

#[async_trait]
impl TextSender for LogTextSender {
    async fn send(&self, text: &TextMessage) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "twofactor::text",
            to = %text.to,
            purpose = ?text.purpose,
            "development text sender (not delivered): {}",
            text.body
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingTextSender;

    fn every_kind() -> Vec<TextContent<'static>> {
        let e = Duration::from_secs(300);
        vec![
            TextContent::LoginCode {
                code: "042917",
                expires_in: e,
            },
            TextContent::PhoneSetupCode {
                code: "042917",
                expires_in: e,
            },
            TextContent::SecurityCode {
                code: "042917",
                action: SecurityAction::DisableTwoFactor,
                expires_in: e,
            },
            TextContent::SecurityCode {
                code: "042917",
                action: SecurityAction::RegenerateBackupCodes,
                expires_in: e,
            },
            TextContent::SecurityCode {
                code: "042917",
                action: SecurityAction::AddFactor,
                expires_in: e,
            },
        ]
    }

    #[test]
    fn every_kind_is_short_and_holds_the_code_once() {
        let langs: [&dyn TextTemplates; 2] = [&EnglishTextTemplates, &GermanTextTemplates];
        for t in langs {
            for kind in every_kind() {
                let body = t.render("Acme", &kind);
                assert!(body.starts_with("Acme: 042917 "), "{body}");
                assert_eq!(body.matches("042917").count(), 1, "{body}");
                assert!(body.contains("5 Min") || body.contains("5 min"), "{body}");
                assert!(body.chars().count() <= 160, "{} chars: {body}", body.len());
                assert!(!body.contains('\n'));
            }
        }
    }

    #[test]
    fn recovery_notices_are_short_and_hold_no_code() {
        let langs: [&dyn TextTemplates; 2] = [&EnglishTextTemplates, &GermanTextTemplates];
        for t in langs {
            for kind in [
                TextContent::RecoveryRequested,
                TextContent::RecoveryReminder,
            ] {
                let body = t.render("Acme", &kind);
                assert!(body.starts_with("Acme: "), "{body}");
                assert!(!body.chars().any(|c| c.is_ascii_digit()), "{body}");
                assert!(body.chars().count() <= 160, "{body}");
                assert!(!body.contains("  "), "{body}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_code_or_the_number() {
        let to = PhoneNumber::parse("+491701234567").unwrap();
        for kind in every_kind() {
            assert!(!format!("{kind:?}").contains("042917"));
            let body = EnglishTextTemplates.render("Acme", &kind);
            let m = TextMessage::new(to.clone(), kind.purpose(), body);
            let d = format!("{m:?}");
            assert!(!d.contains("042917"), "{d}");
            assert!(!d.contains("1701234567"), "{d}");
        }
    }

    #[tokio::test]
    async fn recording_and_boxed_senders_deliver() {
        let rec = RecordingTextSender::new();
        let boxed: Box<dyn TextSender> = Box::new(Arc::new(rec.clone()));
        let to = PhoneNumber::parse("+491701234567").unwrap();
        boxed
            .send(&TextMessage::new(
                to.clone(),
                MessagePurpose::LoginCode,
                "x".into(),
            ))
            .await
            .unwrap();
        LogTextSender
            .send(&TextMessage::new(to, MessagePurpose::LoginCode, "y".into()))
            .await
            .unwrap();
        assert_eq!(rec.texts().len(), 1);
        assert_eq!(rec.last_to("+491701234567").unwrap().body, "x");
        rec.clear();
        assert!(rec.texts().is_empty());
    }
}
