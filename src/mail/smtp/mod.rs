//! SMTP delivery (feature `smtp`): [`SmtpMailer`], built on lettre with Tokio and rustls.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Severity;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rand::RngCore;
use zeroize::Zeroizing;

use super::{Mailer, Message};
use crate::error::{DeliveryError, Error};

/// The environment variable [`SmtpMailer::from_env`] reads.
const SMTP_URL_VAR: &str = "SMTP_URL";

const CERT_MARKER: &str = "-----BEGIN CERTIFICATE-----";

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpTls {
    /// **No encryption at all.**
    ///
    /// **WARNING: plaintext SMTP sends the codes, and the credentials if any, readable by anyone
    /// on the path.** It is accepted only for a relay on the same machine (`localhost`,
    /// `127.0.0.0/8`, `::1`): [`SmtpMailerBuilder::build`] refuses it for any other host unless
    /// [`SmtpMailerBuilder::dangerous_allow_plaintext_to_remote_host`] was called. Default port 25.
    None,
    /// Connect in plaintext and upgrade with `STARTTLS` before anything else is sent; a server
    /// that does not offer `STARTTLS` is an error, never a silent fallback to plaintext. Default
    /// port 587 (submission). The default mode.
    StartTls,
    /// TLS from the first byte ("implicit TLS", RFC 8314). Default port 465 (submissions).
    Implicit,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        }
    }
}

/// Sends messages over SMTP as `multipart/alternative` (plain text and HTML), with `Date`,
/// `Message-ID` and `Auto-Submitted: auto-generated` headers.
///
/// Build it with [`SmtpMailer::builder`] or from a URL with [`SmtpMailer::from_url`] /
/// [`SmtpMailer::from_env`]:
///
/// ```
/// use std::time::Duration;
/// use twofactor::{mail::SmtpMailer, mail::SmtpTls};
///
/// # fn main() -> Result<(), twofactor::Error> {
/// let mailer = SmtpMailer::builder("smtp.example.com")
///     .tls(SmtpTls::StartTls) // the default; port 587 unless .port() says otherwise
///     .credentials("mailer", "app-password")
///     .from("Acme <no-reply@acme.example>")
///     .reply_to("Acme support <support@acme.example>")
///     .subject_prefix("[Acme] ")
///     .timeout(Duration::from_secs(10))
///     .build()?;
///
/// // The same from one environment variable:
/// // SMTP_URL=smtp://mailer:app-password@smtp.example.com:587?tls=starttls&from=no-reply@acme.example
/// let same = SmtpMailer::from_url(
///     "smtp://mailer:app-password@smtp.example.com:587?tls=starttls&from=no-reply%40acme.example",
/// )?
/// .build()?;
/// # let _ = (mailer, same);
/// # Ok(()) }
/// ```
///
/// Connections are pooled (see [`SmtpMailerBuilder::pool_max_size`]). The pool is created on the
/// first send and lives on the Tokio runtime of that send: use one `SmtpMailer` per runtime
/// (cloning it shares the pool). Outside a Tokio runtime, sending fails with a permanent
/// [`DeliveryError`].
///
/// # Errors
///
/// A failed send is a [`DeliveryError`] that keeps the SMTP error as its source and answers
/// [`DeliveryError::is_transient`] from the server's reply: a 4xx reply, a refused or dropped
/// connection, or a timeout is transient; a 5xx reply, an unusable recipient address, a TLS
/// failure (untrusted certificate, no `STARTTLS`) or a refused login is permanent. No error ever
/// contains the message body, so never a code.
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    tls: SmtpTls,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    subject_prefix: String,
    message_id_domain: String,
    transport_builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl SmtpMailer {
    /// A builder for a mailer that sends through `host` (a DNS name or an IP address).
    pub fn builder(host: impl Into<String>) -> SmtpMailerBuilder {
        SmtpMailerBuilder::new(host.into())
    }

    /// A builder configured from an `SMTP_URL`-style URL.
    ///
    /// `smtp://[user[:password]@]host[:port][?parameters]` (STARTTLS unless `tls` says otherwise)
    /// or `smtps://…` (implicit TLS). User and password are percent-decoded. Parameters:
    ///
    /// | parameter | meaning |
    /// | --- | --- |
    /// | `tls` | `starttls`, `implicit` (also `tls`, `smtps`) or `none` (loopback only) |
    /// | `from` | the sender, `no-reply@acme.example` or `Acme <no-reply@acme.example>` |
    /// | `reply_to` | a reply-to address |
    /// | `subject_prefix` | text put before every subject |
    /// | `timeout` | seconds to wait for the server at each step |
    /// | `pool_max_size` | the most connections kept open |
    /// | `hello_name` | the name sent in `EHLO` |
    ///
    /// Anything set in the URL can still be changed on the returned builder.
    ///
    /// ```
    /// use twofactor::{mail::SmtpMailer, mail::SmtpTls};
    ///
    /// let b = SmtpMailer::from_url("smtps://u%40x:p%3Ass@mail.example.com?from=a%40b.example")?;
    /// assert_eq!(b.tls_mode(), SmtpTls::Implicit);
    /// assert!(!format!("{b:?}").contains("p:ss")); // the password is never printed
    /// # Ok::<(), twofactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a URL that does not parse, another scheme, an unknown
    /// parameter or an unusable value. The message never repeats the password.
    pub fn from_url(url: &str) -> Result<SmtpMailerBuilder, Error> {
        parse_url(url)
    }

    /// A builder configured from the `SMTP_URL` environment variable; see
    /// [`SmtpMailer::from_url`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the variable is unset, not Unicode, or not a valid URL.
    pub fn from_env() -> Result<SmtpMailerBuilder, Error> {
        match std::env::var(SMTP_URL_VAR) {
            Ok(url) => parse_url(&url),
            Err(_) => Err(config(format!("{SMTP_URL_VAR} is not set"))),
        }
    }

    fn transport(&self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
        if let Some(t) = self.inner.transport.get() {
            return Ok(t);
        }
        // Building the pool spawns its cleanup task: that needs a Tokio runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(DeliveryError::permanent(SmtpFailure::new(
                FailureKind::Setup,
                None,
                "the SMTP mailer needs a Tokio runtime",
            )));
        }
        Ok(self
            .inner
            .transport
            .get_or_init(|| self.inner.transport_builder.clone().build()))
    }

    fn compose(&self, message: &Message) -> Result<lettre::Message, DeliveryError> {
        let inner = &self.inner;
        let to: Mailbox = message.to.parse().map_err(|e| {
            DeliveryError::permanent(SmtpFailure::new(
                FailureKind::Address,
                None,
                e, // names the parse problem, not the body
            ))
        })?;
        let subject: String = format!("{}{}", inner.subject_prefix, message.subject)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut builder = lettre::Message::builder()
            .from(inner.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(format!("<{id}@{}>", inner.message_id_domain)))
            // RFC 3834: an automatic message; vacation responders stay quiet.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        if let Some(reply_to) = &inner.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| DeliveryError::permanent(SmtpFailure::new(FailureKind::Address, None, e)))
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("SmtpMailer")
            .field("host", &i.host)
            .field("port", &i.port)
            .field("tls", &i.tls)
            .field("from", &i.from.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let email = self.compose(message)?;
        let transport = self.transport()?;
        match transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(e);
                tracing::warn!(
                    target: "twofactor::mail",
                    purpose = ?message.purpose,
                    transient = err.is_transient(),
                    error = %err,
                    "SMTP delivery failed"
                );
                Err(err)
            }
        }
    }
}

/// Decides transient or permanent from what lettre reports.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryError {
    if let Some(code) = e.status() {
        let number = code.to_string().parse::<u16>().ok();
        return match code.severity {
            Severity::TransientNegativeCompletion => {
                DeliveryError::transient(SmtpFailure::new(FailureKind::Refused, number, e))
            }
            _ => DeliveryError::permanent(SmtpFailure::new(FailureKind::Refused, number, e)),
        };
    }
    if e.is_client() || e.is_tls() || tls_refused(&e) {
        // No STARTTLS offered, no usable login mechanism, an untrusted certificate, a message the
        // server cannot take: retrying the same thing gives the same answer.
        return DeliveryError::permanent(SmtpFailure::new(FailureKind::Setup, None, e));
    }
    if e.is_timeout() {
        return DeliveryError::transient(SmtpFailure::new(FailureKind::Timeout, None, e));
    }
    // Connection refused or dropped, network error, a garbled reply: the server may be back soon.
    DeliveryError::transient(SmtpFailure::new(FailureKind::Connection, None, e))
}

/// A TLS handshake that failed on its merits (untrusted or mismatched certificate, a TLS alert)
/// reaches us as an I/O error of kind `InvalidData` somewhere in the source chain.
fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        current = err.source();
    }
    false
}

#[derive(Clone, Copy, Debug)]
enum FailureKind {
    Refused,
    Connection,
    Timeout,
    Setup,
    Address,
}

/// The error an [`SmtpMailer`] puts inside its [`DeliveryError`]: what went wrong, the SMTP reply
/// code if there was one, and the underlying error as source.
#[derive(Debug)]
struct SmtpFailure {
    kind: FailureKind,
    code: Option<u16>,
    source: crate::error::BoxError,
}

impl SmtpFailure {
    fn new(
        kind: FailureKind,
        code: Option<u16>,
        source: impl Into<crate::error::BoxError>,
    ) -> Self {
        SmtpFailure {
            kind,
            code,
            source: source.into(),
        }
    }
}

impl fmt::Display for SmtpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.code) {
            (FailureKind::Refused, Some(code)) => {
                write!(f, "the SMTP server refused the message with {code}")
            }
            (FailureKind::Refused, None) => f.write_str("the SMTP server refused the message"),
            (FailureKind::Connection, _) => f.write_str("could not talk to the SMTP server"),
            (FailureKind::Timeout, _) => f.write_str("the SMTP server did not answer in time"),
            (FailureKind::Setup, _) => f.write_str("the SMTP session could not be set up"),
            (FailureKind::Address, _) => f.write_str("the message could not be addressed"),
        }
    }
}

impl std::error::Error for SmtpFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Configures an [`SmtpMailer`]; from [`SmtpMailer::builder`] or [`SmtpMailer::from_url`].
///
/// Its `Debug` never shows the password.
#[derive(Clone)]
pub struct SmtpMailerBuilder {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    from: Option<String>,
    reply_to: Option<String>,
    subject_prefix: String,
    credentials: Option<(String, Zeroizing<String>)>,
    pool_max_size: u32,
    pool_idle_timeout: Duration,
    timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
    hello_name: Option<String>,
    plaintext_remote: bool,
}

impl fmt::Debug for SmtpMailerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailerBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("subject_prefix", &self.subject_prefix)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "[redacted]")),
            )
            .field("pool_max_size", &self.pool_max_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailerBuilder {
    fn new(host: String) -> Self {
        SmtpMailerBuilder {
            host,
            port: None,
            tls: SmtpTls::StartTls,
            from: None,
            reply_to: None,
            subject_prefix: String::new(),
            credentials: None,
            pool_max_size: 10,
            pool_idle_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(15),
            root_certificates: Vec::new(),
            hello_name: None,
            plaintext_remote: false,
        }
    }

    /// How to protect the connection; default [`SmtpTls::StartTls`]. It also picks the default
    /// port (25, 587 or 465).
    pub fn tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// The TLS mode set so far.
    pub fn tls_mode(&self) -> SmtpTls {
        self.tls
    }

    /// The server port, when not the default of the TLS mode.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The sender: `no-reply@acme.example` or `Acme <no-reply@acme.example>`. Required. Its
    /// domain also ends every `Message-ID`.
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// Where replies go, when not to the sender.
    pub fn reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// Text put before every subject, such as `"[Acme] "` (include the space you want).
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// Logs in with `AUTH PLAIN` or `AUTH LOGIN`. Use TLS: with [`SmtpTls::None`] the password
    /// crosses the wire readable.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Zeroizing::new(password.into())));
        self
    }

    /// The most connections kept open for reuse; default 10, at least 1.
    pub fn pool_max_size(mut self, n: u32) -> Self {
        self.pool_max_size = n;
        self
    }

    /// How long an unused pooled connection stays open; default 60 s.
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }

    /// How long to wait for the server at each step (connect, each command); default 15 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Trusts one more root certificate (PEM), for a server whose certificate a private CA
    /// signed. The public web roots are always trusted.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The name sent in `EHLO`; default this machine's host name.
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Allows [`SmtpTls::None`] to a host that is not loopback.
    ///
    /// **WARNING: the codes (and the SMTP password, if any) then cross the network in
    /// plaintext.** Only for a relay on a private network you fully control, such as a sidecar
    /// container; never across the internet.
    pub fn dangerous_allow_plaintext_to_remote_host(mut self) -> Self {
        self.plaintext_remote = true;
        self
    }

    /// Checks the configuration and makes the mailer. No connection is made until the first send.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the host is empty, `from` is missing or not an address,
    /// `reply_to` is not an address, a root certificate does not parse, the pool size is 0, or
    /// [`SmtpTls::None`] is asked for a host that is not loopback.
    pub fn build(self) -> Result<SmtpMailer, Error> {
        let host = self.host.trim().to_owned();
        if host.is_empty() {
            return Err(config("SMTP host is empty"));
        }
        let from_text = self
            .from
            .as_deref()
            .ok_or_else(|| config("SMTP sender (`from`) is not set"))?;
        let from: Mailbox = from_text
            .parse()
            .map_err(|_| config("SMTP sender (`from`) is not a valid address"))?;
        let reply_to = match &self.reply_to {
            Some(r) => Some(
                r.parse::<Mailbox>()
                    .map_err(|_| config("SMTP `reply_to` is not a valid address"))?,
            ),
            None => None,
        };
        if self.pool_max_size == 0 {
            return Err(config("SMTP pool_max_size must be at least 1"));
        }
        if self.tls == SmtpTls::None && !self.plaintext_remote && !is_loopback(&host) {
            return Err(config(
                "SMTP without TLS is only allowed to a loopback host (localhost, 127.0.0.0/8, ::1)",
            ));
        }
        let port = self.port.unwrap_or(self.tls.default_port());
        // The name the certificate must carry: the host without IPv6 brackets.
        let tls_name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(self.tls_parameters(&tls_name)?),
            SmtpTls::Implicit => Tls::Wrapper(self.tls_parameters(&tls_name)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(tls_name)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(self.pool_max_size)
                    .idle_timeout(self.pool_idle_timeout),
            );
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        if let Some(name) = &self.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        let message_id_domain = from.email.domain().to_owned();
        Ok(SmtpMailer {
            inner: Arc::new(Inner {
                host,
                port,
                tls: self.tls,
                from,
                reply_to,
                subject_prefix: self.subject_prefix,
                message_id_domain,
                transport_builder: builder,
                transport: OnceLock::new(),
            }),
        })
    }

    fn tls_parameters(&self, name: &str) -> Result<TlsParameters, Error> {
        let mut params = TlsParameters::builder(name.to_owned());
        for pem in &self.root_certificates {
            // An input without any certificate block parses as an empty list: refuse it too.
            if !pem
                .windows(CERT_MARKER.len())
                .any(|w| w == CERT_MARKER.as_bytes())
            {
                return Err(config("SMTP root certificate is not a PEM certificate"));
            }
            let cert = Certificate::from_pem(pem)
                .map_err(|_| config("SMTP root certificate is not valid PEM"))?;
            params = params.add_root_certificate(cert);
        }
        params
            .build_rustls()
            .map_err(|e| config(format!("SMTP TLS setup failed: {e}")))
    }
}

fn config(msg: impl Into<String>) -> Error {
    Error::InvalidConfig(msg.into())
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let lower = bare.trim_end_matches('.').to_ascii_lowercase();
    lower == "localhost" || lower.ends_with(".localhost")
}

fn parse_url(raw: &str) -> Result<SmtpMailerBuilder, Error> {
    let url = url::Url::parse(raw.trim()).map_err(|e| config(format!("SMTP URL: {e}")))?;
    let mut tls = match url.scheme() {
        "smtp" => SmtpTls::StartTls,
        "smtps" => SmtpTls::Implicit,
        _ => return Err(config("SMTP URL: the scheme must be smtp or smtps")),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(config("SMTP URL: no host")),
    };
    let decode = |s: &str, what: &str| -> Result<String, Error> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| config(format!("SMTP URL: the {what} is not UTF-8")))
    };
    let mut b = SmtpMailerBuilder::new(host);
    if let Some(port) = url.port() {
        b = b.port(port);
    }
    if !url.username().is_empty() {
        let user = decode(url.username(), "user")?;
        let password = Zeroizing::new(decode(url.password().unwrap_or(""), "password")?);
        b.credentials = Some((user, password));
    }
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "tls" => {
                tls = match value.to_ascii_lowercase().as_str() {
                    "none" | "off" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "implicit" | "tls" | "smtps" | "wrapper" => SmtpTls::Implicit,
                    _ => return Err(config("SMTP URL: tls must be none, starttls or implicit")),
                }
            }
            "from" => b.from = Some(value),
            "reply_to" | "reply-to" => b.reply_to = Some(value),
            "subject_prefix" | "subject-prefix" => b.subject_prefix = value,
            "timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| config("SMTP URL: timeout must be whole seconds"))?;
                b.timeout = Duration::from_secs(secs);
            }
            "pool_max_size" | "pool-max-size" => {
                b.pool_max_size = value
                    .parse()
                    .map_err(|_| config("SMTP URL: pool_max_size must be a number"))?;
            }
            "hello_name" | "hello-name" => b.hello_name = Some(value),
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(config(format!("SMTP URL: unknown parameter `{other}`")));
            }
        }
    }
    b.tls = tls;
    Ok(b)
}

#[cfg(test)]
mod tests;
