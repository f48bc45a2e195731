//! The built-in message templates and the layout they share.
//!
//! A [`Templates`] implementation turns a [`MailContext`] into a subject, a plain-text part and an
//! HTML part. [`EnglishTemplates`] is the default and [`GermanTemplates`] shows what a translation
//! takes: the wording per [`MailContent`], handed to [`StandardMessage`], which escapes, spaces the
//! code and lays out both parts. A host that wants another language or its own wording writes the
//! same few lines (see [`StandardMessage`] for a French example); no template engine is involved.

use std::fmt;
use std::time::Duration;

use super::{MailContent, MailContext, SecurityAction};
use crate::code::spaced;
use crate::method::Method;

/// A rendered message body, before it is addressed.
#[derive(Clone)]
#[non_exhaustive]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

impl Rendered {
    /// A rendered message from its parts.
    pub fn new(subject: String, text: String, html: String) -> Self {
        Rendered {
            subject,
            text,
            html,
        }
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .field("body", &"[redacted]")
            .finish()
    }
}

/// Turns a [`MailContext`] into a subject, a text part and an HTML part.
///
/// Implement it to change wording or language. Escape every context string in HTML with
/// [`escape_html`], or build the message with [`StandardMessage`], which does it for you.
pub trait Templates: Send + Sync + 'static {
    /// Renders one message.
    fn render(&self, ctx: &MailContext<'_>) -> Rendered;
}

/// The layout of every built-in message: greeting, lead, the code and its expiry when there is
/// one, a closing line and a signature, as a plain-text part and an HTML part.
///
/// [`StandardMessage::render`] HTML-escapes every field in the HTML part, replaces control
/// characters (line breaks included) in the greeting, subject and signature by spaces, and prints
/// the code spaced in two halves (`123 456`) so it is easy to read and type. The text part is
/// plain text, never HTML.
///
/// The messages are deliberately plain — no links, no images, no tracking, no shouting — which is
/// what keeps one-time-code mail out of spam folders.
///
/// A translation is one `match` over [`MailContent`]:
///
/// ```
/// use twofactor::{mail::MailContext, mail::MailContent, mail::Rendered, mail::StandardMessage, mail::Templates};
///
/// struct FrenchTemplates;
///
/// impl Templates for FrenchTemplates {
///     fn render(&self, ctx: &MailContext<'_>) -> Rendered {
///         let (subject, lead, code, expires_in) = match ctx.content {
///             MailContent::LoginCode { code, expires_in } => (
///                 "votre code de connexion",
///                 "Saisissez ce code pour terminer la connexion :",
///                 Some(code),
///                 Some(expires_in),
///             ),
///             // … one arm per kind; a catch-all keeps the code compiling when kinds are added.
///             _ => ("avis de sécurité", "Votre compte a changé.", None, None),
///         };
///         StandardMessage {
///             lang: "fr",
///             subject: format!("{} : {subject}", ctx.issuer),
///             greeting: match ctx.display_name {
///                 Some(n) => format!("Bonjour {n},"),
///                 None => "Bonjour,".to_owned(),
///             },
///             lead: lead.to_owned(),
///             code,
///             expiry: expires_in.map(|d| {
///                 let m = StandardMessage::minutes(d);
///                 format!("Le code expire dans {m} minute{}.", if m == 1 { "" } else { "s" })
///             }),
///             closing: "Si ce n'était pas vous, changez votre mot de passe.".to_owned(),
///             signature: ctx.issuer.to_owned(),
///         }
///         .render()
///     }
/// }
///
/// let r = FrenchTemplates.render(&MailContext::new(
///     "Acme",
///     Some("<b>Zoé</b>"),
///     MailContent::LoginCode { code: "042917", expires_in: std::time::Duration::from_secs(300) },
/// ));
/// assert!(r.text.contains("042 917"));
/// assert!(r.text.contains("dans 5 minutes"));
/// assert!(r.html.contains("Bonjour &lt;b&gt;Zoé&lt;/b&gt;,"));
/// ```
#[derive(Clone)]
pub struct StandardMessage<'a> {
    /// The language tag of the message (`"en"`, `"de"`, …), set on the HTML part.
    pub lang: &'a str,
    /// The subject line.
    pub subject: String,
    /// The first line, usually with the recipient's name.
    pub greeting: String,
    /// What happened, or what the code is for.
    pub lead: String,
    /// The one-time code, when the message carries one (secret: only the body shows it).
    pub code: Option<&'a str>,
    /// The line saying how long the code is valid; see [`StandardMessage::minutes`].
    pub expiry: Option<String>,
    /// What to do if the recipient did not cause this message.
    pub closing: String,
    /// The sender's name at the bottom, usually the issuer.
    pub signature: String,
}

impl StandardMessage<'_> {
    /// A validity period in whole minutes, rounded up and at least 1: what the expiry line states.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twofactor::mail::StandardMessage;
    /// assert_eq!(StandardMessage::minutes(Duration::from_secs(300)), 5);
    /// assert_eq!(StandardMessage::minutes(Duration::from_secs(301)), 6);
    /// assert_eq!(StandardMessage::minutes(Duration::from_secs(0)), 1);
    /// ```
    pub fn minutes(d: Duration) -> u64 {
        d.as_secs().div_ceil(60).max(1)
    }

    /// Lays the message out as a plain-text part and an escaped HTML part.
    pub fn render(&self) -> Rendered {
        let subject = one_line(&self.subject);
        let greeting = one_line(&self.greeting);
        let signature = one_line(&self.signature);
        let code = self.code.map(spaced);

        let mut text = format!("{greeting}\n\n{}\n", self.lead);
        let mut html = format!(
            "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width\">\n<title>{}</title>\n</head>\n\
             <body style=\"font-family:sans-serif;line-height:1.5;color:#222\">\n\
             <p>{}</p>\n<p>{}</p>\n",
            escape_html(self.lang),
            escape_html(&subject),
            escape_html(&greeting),
            escape_html(&self.lead),
        );
        if let Some(code) = &code {
            text.push_str(&format!("\n    {code}\n"));
            html.push_str(&format!(
                "<p style=\"font-size:28px;font-weight:bold;letter-spacing:4px;\
                 font-family:monospace\">{}</p>\n",
                escape_html(code)
            ));
        }
        if let Some(expiry) = &self.expiry {
            text.push_str(&format!("\n{expiry}\n"));
            html.push_str(&format!("<p>{}</p>\n", escape_html(expiry)));
        }
        text.push_str(&format!("\n{}\n\n{signature}\n", self.closing));
        html.push_str(&format!(
            "<p>{}</p>\n<p>{}</p>\n</body>\n</html>\n",
            escape_html(&self.closing),
            escape_html(&signature)
        ));
        Rendered::new(subject, text, html)
    }
}

impl fmt::Debug for StandardMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardMessage")
            .field("lang", &self.lang)
            .field("subject", &self.subject)
            .field("code", &self.code.map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Control characters (line breaks, tabs, escapes) become spaces: a name or issuer can then never
/// add lines to a subject or a greeting.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The built-in English messages (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnglishTemplates;

impl Templates for EnglishTemplates {
    fn render(&self, ctx: &MailContext<'_>) -> Rendered {
        let issuer = ctx.issuer;
        let (subject, lead, code, expires_in, closing) = match ctx.content {
            MailContent::LoginCode { code, expires_in } => (
                format!("{issuer}: your sign-in code"),
                "Use this code to finish signing in:",
                Some(code),
                Some(expires_in),
                "If you did not try to sign in, change your password: someone knows it.",
            ),
            MailContent::EmailSetupCode { code, expires_in } => (
                format!("{issuer}: confirm your two-factor email"),
                "Use this code to turn on two-factor authentication by email:",
                Some(code),
                Some(expires_in),
                "If you did not ask for this, you can ignore this message.",
            ),
            MailContent::RegistrationCode { code, expires_in } => (
                format!("{issuer}: verify your email address"),
                "Use this code to verify your email address:",
                Some(code),
                Some(expires_in),
                "If you did not create an account, you can ignore this message.",
            ),
            MailContent::TwoFactorDisabled => (
                format!("{issuer}: two-factor authentication was turned off"),
                "Two-factor authentication was just turned off for your account.",
                None,
                None,
                "If this was not you, secure your account now.",
            ),
            MailContent::BackupCodesRegenerated => (
                format!("{issuer}: new backup codes"),
                "A new set of backup codes was created for your account; the old ones no longer work.",
                None,
                None,
                "If this was not you, secure your account now.",
            ),
            MailContent::SecurityCode {
                code,
                action,
                expires_in,
            } => (
                format!("{issuer}: confirm a security change"),
                match action {
                    SecurityAction::DisableTwoFactor => {
                        "Use this code to confirm turning off two-factor authentication:"
                    }
                    SecurityAction::RegenerateBackupCodes => {
                        "Use this code to confirm creating new backup codes:"
                    }
                    SecurityAction::AddFactor => {
                        "Use this code to confirm adding a sign-in method to your account:"
                    }
                },
                Some(code),
                Some(expires_in),
                "If you did not ask for this change, do not share the code and secure your account now.",
            ),
            MailContent::FactorAdded { method } => (
                format!("{issuer}: a sign-in method was added"),
                match method {
                    Method::Totp => "An authenticator app was added as a second factor to your account.",
                    Method::Email => "An email address was added as a second factor to your account.",
                    Method::SecurityKey => "A security key was added as a second factor to your account.",
                    _ => "A second factor was added to your account.",
                },
                None,
                None,
                "If this was not you, secure your account now.",
            ),
            MailContent::FactorRemoved { method } => (
                format!("{issuer}: a sign-in method was removed"),
                match method {
                    Method::SecurityKey => "A security key was removed from your account's second factors.",
                    _ => "A second factor was removed from your account.",
                },
                None,
                None,
                "If this was not you, secure your account now.",
            ),
            MailContent::DeviceTrusted => (
                format!("{issuer}: a device was trusted"),
                "A device was trusted to sign in to your account without a second factor until its trust expires or is revoked.",
                None,
                None,
                "If this was not you, revoke your trusted devices and secure your account now.",
            ),
            MailContent::RecoveryRequested => (
                format!("{issuer}: two-factor authentication will be turned off"),
                "Someone with your password asked to turn off two-factor authentication for your account, as if every second factor were lost. It takes effect after a waiting period.",
                None,
                None,
                "If this was not you, sign in once with your authenticator app, email code or a backup code: that cancels it. Then change your password.",
            ),
            MailContent::RecoveryReminder => (
                format!("{issuer}: two-factor authentication will be turned off soon"),
                "The request to turn off two-factor authentication for your account takes effect soon.",
                None,
                None,
                "If this was not you, sign in once with a second factor now to cancel it, and change your password.",
            ),
            MailContent::TotpReplayRejected => (
                format!("{issuer}: a used sign-in code was rejected"),
                "Someone entered an authenticator code for your account that had already been used.",
                None,
                None,
                "If this was not you, change your password: someone may know it.",
            ),
        };
        StandardMessage {
            lang: "en",
            subject,
            greeting: match ctx.display_name {
                Some(n) => format!("Hello {n},"),
                None => "Hello,".to_owned(),
            },
            lead: lead.to_owned(),
            code,
            expiry: expires_in.map(|d| {
                let m = StandardMessage::minutes(d);
                let unit = if m == 1 { "minute" } else { "minutes" };
                format!("The code expires in {m} {unit}.")
            }),
            closing: closing.to_owned(),
            signature: issuer.to_owned(),
        }
        .render()
    }
}

/// The built-in German messages, and the example of a translation.
///
/// ```
/// use std::time::Duration;
/// use twofactor::{mail::GermanTemplates, mail::MailContext, mail::MailContent, mail::Templates};
///
/// let r = GermanTemplates.render(&MailContext::new(
///     "Acme",
///     Some("Jürgen"),
///     MailContent::LoginCode { code: "123456", expires_in: Duration::from_secs(600) },
/// ));
/// assert_eq!(r.subject, "Acme: Ihr Anmeldecode");
/// assert!(r.text.starts_with("Hallo Jürgen,"));
/// assert!(r.text.contains("123 456"));
/// assert!(r.text.contains("Der Code ist 10 Minuten gültig."));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GermanTemplates;

impl Templates for GermanTemplates {
    fn render(&self, ctx: &MailContext<'_>) -> Rendered {
        let issuer = ctx.issuer;
        let (subject, lead, code, expires_in, closing) = match ctx.content {
            MailContent::LoginCode { code, expires_in } => (
                format!("{issuer}: Ihr Anmeldecode"),
                "Geben Sie diesen Code ein, um die Anmeldung abzuschließen:",
                Some(code),
                Some(expires_in),
                "Wenn Sie sich nicht anmelden wollten, ändern Sie Ihr Passwort: Jemand kennt es.",
            ),
            MailContent::EmailSetupCode { code, expires_in } => (
                format!("{issuer}: Bestätigen Sie Ihre E-Mail-Adresse für die Zwei-Faktor-Anmeldung"),
                "Geben Sie diesen Code ein, um die Zwei-Faktor-Authentifizierung per E-Mail einzuschalten:",
                Some(code),
                Some(expires_in),
                "Wenn Sie das nicht angefordert haben, können Sie diese Nachricht ignorieren.",
            ),
            MailContent::RegistrationCode { code, expires_in } => (
                format!("{issuer}: Bestätigen Sie Ihre E-Mail-Adresse"),
                "Geben Sie diesen Code ein, um Ihre E-Mail-Adresse zu bestätigen:",
                Some(code),
                Some(expires_in),
                "Wenn Sie kein Konto angelegt haben, können Sie diese Nachricht ignorieren.",
            ),
            MailContent::TwoFactorDisabled => (
                format!("{issuer}: Zwei-Faktor-Authentifizierung ausgeschaltet"),
                "Die Zwei-Faktor-Authentifizierung wurde soeben für Ihr Konto ausgeschaltet.",
                None,
                None,
                "Wenn Sie das nicht waren, sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::BackupCodesRegenerated => (
                format!("{issuer}: neue Backup-Codes"),
                "Für Ihr Konto wurden neue Backup-Codes erstellt; die alten gelten nicht mehr.",
                None,
                None,
                "Wenn Sie das nicht waren, sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::SecurityCode {
                code,
                action,
                expires_in,
            } => (
                format!("{issuer}: Bestätigen Sie eine Sicherheitsänderung"),
                match action {
                    SecurityAction::DisableTwoFactor => {
                        "Geben Sie diesen Code ein, um das Ausschalten der Zwei-Faktor-Authentifizierung zu bestätigen:"
                    }
                    SecurityAction::RegenerateBackupCodes => {
                        "Geben Sie diesen Code ein, um neue Backup-Codes zu bestätigen:"
                    }
                    SecurityAction::AddFactor => {
                        "Geben Sie diesen Code ein, um eine neue Anmeldemethode für Ihr Konto zu bestätigen:"
                    }
                },
                Some(code),
                Some(expires_in),
                "Wenn Sie diese Änderung nicht angefordert haben, geben Sie den Code nicht weiter und sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::FactorAdded { method } => (
                format!("{issuer}: eine Anmeldemethode wurde hinzugefügt"),
                match method {
                    Method::Totp => "Eine Authenticator-App wurde Ihrem Konto als zweiter Faktor hinzugefügt.",
                    Method::Email => "Eine E-Mail-Adresse wurde Ihrem Konto als zweiter Faktor hinzugefügt.",
                    Method::SecurityKey => "Ein Sicherheitsschlüssel wurde Ihrem Konto als zweiter Faktor hinzugefügt.",
                    _ => "Ihrem Konto wurde ein zweiter Faktor hinzugefügt.",
                },
                None,
                None,
                "Wenn Sie das nicht waren, sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::FactorRemoved { method } => (
                format!("{issuer}: eine Anmeldemethode wurde entfernt"),
                match method {
                    Method::SecurityKey => "Ein Sicherheitsschlüssel wurde aus den zweiten Faktoren Ihres Kontos entfernt.",
                    _ => "Ein zweiter Faktor wurde aus Ihrem Konto entfernt.",
                },
                None,
                None,
                "Wenn Sie das nicht waren, sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::DeviceTrusted => (
                format!("{issuer}: einem Gerät wurde vertraut"),
                "Ein Gerät darf sich bei Ihrem Konto ohne zweiten Faktor anmelden, bis das Vertrauen abläuft oder widerrufen wird.",
                None,
                None,
                "Wenn Sie das nicht waren, widerrufen Sie Ihre vertrauenswürdigen Geräte und sichern Sie Ihr Konto jetzt.",
            ),
            MailContent::RecoveryRequested => (
                format!("{issuer}: die Zwei-Faktor-Authentifizierung wird ausgeschaltet"),
                "Jemand mit Ihrem Passwort hat beantragt, die Zwei-Faktor-Authentifizierung für Ihr Konto auszuschalten, als wären alle zweiten Faktoren verloren. Das geschieht nach einer Wartezeit.",
                None,
                None,
                "Wenn Sie das nicht waren, melden Sie sich einmal mit Ihrer Authenticator-App, einem E-Mail-Code oder einem Backup-Code an: Das bricht es ab. Ändern Sie dann Ihr Passwort.",
            ),
            MailContent::RecoveryReminder => (
                format!("{issuer}: die Zwei-Faktor-Authentifizierung wird bald ausgeschaltet"),
                "Der Antrag, die Zwei-Faktor-Authentifizierung für Ihr Konto auszuschalten, wird bald wirksam.",
                None,
                None,
                "Wenn Sie das nicht waren, melden Sie sich jetzt einmal mit einem zweiten Faktor an, um ihn abzubrechen, und ändern Sie Ihr Passwort.",
            ),
            MailContent::TotpReplayRejected => (
                format!("{issuer}: ein bereits benutzter Anmeldecode wurde abgelehnt"),
                "Jemand hat für Ihr Konto einen Code aus der Authenticator-App eingegeben, der bereits benutzt worden war.",
                None,
                None,
                "Wenn Sie das nicht waren, ändern Sie Ihr Passwort: Jemand kennt es möglicherweise.",
            ),
        };
        StandardMessage {
            lang: "de",
            subject,
            greeting: match ctx.display_name {
                Some(n) => format!("Hallo {n},"),
                None => "Hallo,".to_owned(),
            },
            lead: lead.to_owned(),
            code,
            expiry: expires_in.map(|d| {
                let m = StandardMessage::minutes(d);
                let unit = if m == 1 { "Minute" } else { "Minuten" };
                format!("Der Code ist {m} {unit} gültig.")
            }),
            closing: closing.to_owned(),
            signature: issuer.to_owned(),
        }
        .render()
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
///
/// ```
/// assert_eq!(twofactor::mail::escape_html("<b>&"), "&lt;b&gt;&amp;");
/// ```
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
