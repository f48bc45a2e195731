//! `SmtpMailer` against a real SMTP server: `tests/smtp_sink.py`, an aiosmtpd server started by
//! each test on a port the OS picks, which stores what it receives.
//!
//! When the sink cannot be started (no Python with aiosmtpd), each test skips and says so on the
//! real standard error (see `support::skip`), unless `TWOFACTOR_REQUIRE_SERVERS=1`, when it fails. The Python used is
//! `TWOFACTOR_SMTP_PYTHON`, else `/usr/bin/python3` (Debian's `python3-aiosmtpd`), else `python3`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use twofactor::LoginContext;

use async_trait::async_trait;
use serde_json::Value;
use twofactor::{
    error::DeliveryError, mail::EnglishTemplates, mail::GermanTemplates, mail::MailContent,
    mail::MailContext, mail::Mailer, mail::Message, mail::SmtpMailer, mail::SmtpMailerBuilder,
    mail::SmtpTls, mail::Templates, testing::RecordingMailer, Challenge, Error, LoginStep, Method,
};

use crate::support::{code_in, skip, Harness};

const CODE: &str = "042917";
const SPACED: &str = "042 917";
const SCRIPT_NAME: &str = "<script>alert('pwned')</script>";

/// A running `tests/smtp_sink.py`. Dropping it stops the process and removes its directory.
struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

#[derive(Default)]
struct SinkOptions<'a> {
    tls: Option<(&'a str, &'a Path, &'a Path)>,
    auth: Option<&'a str>,
}

impl Sink {
    /// Starts a plaintext sink, or returns `None` after saying why the test is skipped.
    fn start() -> Option<Sink> {
        Self::start_with(SinkOptions::default())
    }

    fn start_with(opts: SinkOptions<'_>) -> Option<Sink> {
        let dir = temp_dir("sink");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script).arg("--dir").arg(&dir);
        if let Some((mode, cert, key)) = opts.tls {
            cmd.args(["--tls", mode])
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        if let Some(auth) = opts.auth {
            cmd.args(["--auth", auth]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return unavailable(&format!("cannot run {}: {e}", python())),
        };
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let port = match (read, line.trim().strip_prefix("PORT ")) {
            (Ok(_), Some(p)) => p.parse::<u16>().unwrap(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let why = if line.trim().is_empty() {
                    "the sink exited without a port".to_owned()
                } else {
                    line.trim().to_owned()
                };
                return unavailable(&why);
            }
        };
        Some(Sink { child, port, dir })
    }

    /// A mailer for this sink, without TLS (loopback).
    fn mailer(&self) -> SmtpMailerBuilder {
        SmtpMailer::builder("127.0.0.1")
            .tls(SmtpTls::None)
            .port(self.port)
            .from("Acme <no-reply@acme.test>")
            .timeout(Duration::from_secs(20))
    }

    /// Every stored message, oldest first, as the sink's JSON summary plus the raw bytes.
    fn received(&self) -> Vec<(Value, String)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let json: Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                let raw = std::fs::read(p.with_extension("eml")).unwrap();
                (json, String::from_utf8(raw).unwrap())
            })
            .collect()
    }

    /// Makes the sink answer `reply` to RCPT TO (`Some`) or accept again (`None`).
    fn refuse_rcpt(&self, reply: Option<&str>) {
        set_file(&self.dir.join("reject-rcpt"), reply);
    }

    /// Makes the sink answer `reply` at the end of DATA (`Some`) or accept again (`None`).
    fn refuse_data(&self, reply: Option<&str>) {
        set_file(&self.dir.join("reject-data"), reply);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_file(path: &Path, content: Option<&str>) {
    match content {
        Some(c) => std::fs::write(path, format!("{c}\n")).unwrap(),
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn python() -> String {
    if let Ok(p) = std::env::var("TWOFACTOR_SMTP_PYTHON") {
        return p;
    }
    if Path::new("/usr/bin/python3").exists() {
        return "/usr/bin/python3".to_owned();
    }
    "python3".to_owned()
}

fn unavailable(why: &str) -> Option<Sink> {
    if skip::servers_required() {
        panic!("TWOFACTOR_REQUIRE_SERVERS=1 but the SMTP sink could not start: {why}");
    }
    skip::skipped(
        "SMTP tests: the SMTP sink (tests/smtp_sink.py) could not start (install \
         python3-aiosmtpd or set TWOFACTOR_SMTP_PYTHON)",
        Some(why),
    );
    None
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "twofactor-smtp-{what}-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn login_message(templates: &dyn Templates, to: &str, name: Option<&str>) -> Message {
    let kind = MailContent::LoginCode {
        code: CODE,
        expires_in: Duration::from_secs(300),
    };
    let rendered = templates.render(&MailContext::new("Acme", name, kind));
    Message::new(to, kind.purpose(), rendered)
}

fn all_kinds() -> Vec<MailContent<'static>> {
    let ttl = Duration::from_secs(600);
    vec![
        MailContent::LoginCode {
            code: CODE,
            expires_in: ttl,
        },
        MailContent::EmailSetupCode {
            code: CODE,
            expires_in: ttl,
        },
        MailContent::RegistrationCode {
            code: CODE,
            expires_in: ttl,
        },
        MailContent::TwoFactorDisabled,
        MailContent::BackupCodesRegenerated,
        MailContent::TotpReplayRejected,
    ]
}

/// The error and its whole source chain, Display and Debug.
fn everything_said(e: &DeliveryError) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" | {s}"));
        source = s.source();
    }
    out
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

fn parts(v: &Value) -> Vec<(String, String)> {
    v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["content_type"].as_str().unwrap().to_owned(),
                p["content"].as_str().unwrap().replace("\r\n", "\n"),
            )
        })
        .collect()
}

#[tokio::test]
async fn delivers_a_multipart_message_with_date_and_message_id() {
    let Some(sink) = Sink::start() else { return };
    let mailer = sink
        .mailer()
        .reply_to("Acme help <help@acme.test>")
        .subject_prefix("[test] ")
        .build()
        .unwrap();
    let msg = login_message(&EnglishTemplates, "alice@example.com", Some(SCRIPT_NAME));
    mailer.send(&msg).await.unwrap();

    let got = sink.received();
    assert_eq!(got.len(), 1);
    let (m, raw) = &got[0];
    // Envelope and headers.
    assert_eq!(m["rcpt_tos"], serde_json::json!(["alice@example.com"]));
    assert_eq!(str_of(m, &["mail_from"]), "no-reply@acme.test");
    assert_eq!(str_of(m, &["headers", "to"]), "alice@example.com");
    assert_eq!(str_of(m, &["headers", "from"]), "Acme <no-reply@acme.test>");
    assert_eq!(
        str_of(m, &["headers", "reply_to"]),
        "Acme help <help@acme.test>"
    );
    assert_eq!(
        str_of(m, &["headers", "subject"]),
        "[test] Acme: your sign-in code"
    );
    assert_eq!(str_of(m, &["headers", "mime_version"]), "1.0");
    assert_eq!(str_of(m, &["headers", "auto_submitted"]), "auto-generated");
    assert_eq!(m["date_ok"], true, "Date parses with a zone: {m}");
    assert_eq!(m["message_id_ok"], true, "Message-ID is <id@domain>: {m}");
    assert!(str_of(m, &["headers", "message_id"]).ends_with("@acme.test>"));
    // Valid MIME: the parser found no defect; two alternatives, text first.
    assert_eq!(m["defects"], serde_json::json!([]), "{m}");
    assert_eq!(str_of(m, &["content_type"]), "multipart/alternative");
    let parts = parts(m);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (text_type, text) = &parts[0];
    let (html_type, html) = &parts[1];
    assert_eq!(text_type, "text/plain");
    assert_eq!(html_type, "text/html");
    // The code, spaced, in the text part, which is the rendered text exactly.
    assert!(text.contains(SPACED), "{text}");
    assert_eq!(text.trim_end(), msg.text.trim_end());
    assert_eq!(html.trim_end(), msg.html.trim_end());
    // The display name arrives escaped in HTML, and as plain text in the text part.
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(text.contains(SCRIPT_NAME));
    // Nothing in the transfer is unencoded 8-bit or bare LF.
    assert!(raw.is_ascii());
    assert!(!raw.replace("\r\n", "").contains('\n'));
    assert_eq!(m["tls"], false);
}

#[tokio::test]
async fn every_kind_in_both_languages_arrives_as_valid_mime() {
    let Some(sink) = Sink::start() else { return };
    let mailer = sink.mailer().build().unwrap();
    let languages: [(&str, &dyn Templates); 2] =
        [("en", &EnglishTemplates), ("de", &GermanTemplates)];
    let mut sent = Vec::new();
    for (lang, templates) in languages {
        for kind in all_kinds() {
            let rendered =
                templates.render(&MailContext::new("Acme & Söhne", Some("Jürgen"), kind));
            let msg = Message::new("jurgen@example.com", kind.purpose(), rendered);
            mailer.send(&msg).await.unwrap();
            sent.push((lang, kind, msg));
        }
    }
    let got = sink.received();
    assert_eq!(got.len(), sent.len());
    for ((lang, kind, msg), (m, raw)) in sent.iter().zip(&got) {
        assert_eq!(m["defects"], serde_json::json!([]), "{lang} {kind:?}: {m}");
        assert_eq!(str_of(m, &["headers", "subject"]), msg.subject, "{lang}");
        let parts = parts(m);
        assert_eq!(parts.len(), 2, "{lang} {kind:?}");
        assert_eq!(
            parts[0].1.trim_end(),
            msg.text.trim_end(),
            "{lang} {kind:?}"
        );
        assert_eq!(
            parts[1].1.trim_end(),
            msg.html.trim_end(),
            "{lang} {kind:?}"
        );
        let with_code = matches!(
            kind,
            MailContent::LoginCode { .. }
                | MailContent::EmailSetupCode { .. }
                | MailContent::RegistrationCode { .. }
        );
        assert_eq!(parts[0].1.contains(SPACED), with_code, "{lang} {kind:?}");
        assert!(raw.is_ascii(), "{lang} {kind:?}: non-ASCII is encoded");
    }
    // Each message has its own Message-ID.
    let mut ids: Vec<&str> = got
        .iter()
        .map(|(m, _)| str_of(m, &["headers", "message_id"]))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len());
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_error_without_the_code() {
    let Some(sink) = Sink::start() else { return };
    sink.refuse_rcpt(Some("550 5.1.1 mailbox unavailable"));
    let mailer = sink.mailer().build().unwrap();
    let msg = login_message(&EnglishTemplates, "nobody@example.com", None);
    let e = mailer.send(&msg).await.unwrap_err();
    assert!(!e.is_transient());
    let said = everything_said(&e);
    assert!(said.contains("550"), "{said}");
    assert!(!said.contains(CODE) && !said.contains(SPACED), "{said}");
    assert!(sink.received().is_empty());
    // As the service reports it.
    let e = Error::from(e);
    assert_eq!(e.code(), "delivery_failed");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_temporary_refusal_is_transient_and_the_next_send_succeeds() {
    let Some(sink) = Sink::start() else { return };
    let mailer = sink.mailer().build().unwrap();
    let msg = login_message(&EnglishTemplates, "alice@example.com", None);

    sink.refuse_data(Some("451 4.3.0 try again later"));
    let e = mailer.send(&msg).await.unwrap_err();
    assert!(e.is_transient());
    let said = everything_said(&e);
    assert!(said.contains("451"), "{said}");
    assert!(!said.contains(CODE) && !said.contains(SPACED), "{said}");
    assert!(sink.received().is_empty());

    sink.refuse_data(Some("554 5.7.1 message refused"));
    let e = mailer.send(&msg).await.unwrap_err();
    assert!(!e.is_transient());
    assert!(everything_said(&e).contains("554"));

    sink.refuse_data(None);
    mailer.send(&msg).await.unwrap();
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transient_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = SmtpMailer::builder("127.0.0.1")
        .tls(SmtpTls::None)
        .port(port)
        .from("no-reply@acme.test")
        .build()
        .unwrap();
    let e = mailer
        .send(&login_message(&EnglishTemplates, "alice@example.com", None))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{}", everything_said(&e));
    assert!(!everything_said(&e).contains(CODE));
    let e = Error::from(e);
    assert_eq!(e.http_status(), 503);
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_bad_recipient_address_is_permanent_and_sends_nothing() {
    let Some(sink) = Sink::start() else { return };
    let mailer = sink.mailer().build().unwrap();
    let e = mailer
        .send(&login_message(&EnglishTemplates, "not an address", None))
        .await
        .unwrap_err();
    assert!(!e.is_transient());
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn credentials_log_in_and_a_wrong_password_is_permanent() {
    let Some(sink) = Sink::start_with(SinkOptions {
        auth: Some("mailer:s3cret"),
        ..Default::default()
    }) else {
        return;
    };
    let msg = login_message(&EnglishTemplates, "alice@example.com", None);

    let without = sink.mailer().build().unwrap();
    let e = without.send(&msg).await.unwrap_err();
    assert!(!e.is_transient(), "{}", everything_said(&e));

    let wrong = sink
        .mailer()
        .credentials("mailer", "guess")
        .build()
        .unwrap();
    let e = wrong.send(&msg).await.unwrap_err();
    assert!(!e.is_transient(), "{}", everything_said(&e));
    assert!(!everything_said(&e).contains("guess"));

    let right = sink
        .mailer()
        .credentials("mailer", "s3cret")
        .build()
        .unwrap();
    right.send(&msg).await.unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["login"], "mailer");
}

#[tokio::test]
async fn an_smtp_url_configures_the_mailer() {
    let Some(sink) = Sink::start_with(SinkOptions {
        auth: Some("u@acme.test:p:w@rd"),
        ..Default::default()
    }) else {
        return;
    };
    let url = format!(
        "smtp://u%40acme.test:p%3Aw%40rd@127.0.0.1:{}?tls=none&from=Acme%20%3Cno-reply%40acme.test%3E\
         &subject_prefix=%5Burl%5D%20&timeout=20",
        sink.port
    );
    let mailer = SmtpMailer::from_url(&url).unwrap().build().unwrap();
    mailer
        .send(&login_message(&EnglishTemplates, "alice@example.com", None))
        .await
        .unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["login"], "u@acme.test");
    assert_eq!(
        str_of(&got[0].0, &["headers", "subject"]),
        "[url] Acme: your sign-in code"
    );
    assert_eq!(
        str_of(&got[0].0, &["headers", "from"]),
        "Acme <no-reply@acme.test>"
    );
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, written as PEM files.
struct TestPki {
    dir: PathBuf,
    ca_pem: String,
}

impl TestPki {
    fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let dir = temp_dir("pki");
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        TestPki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn sink(&self, mode: &str) -> Option<Sink> {
        let cert = self.dir.join("cert.pem");
        let key = self.dir.join("key.pem");
        Sink::start_with(SinkOptions {
            tls: Some((mode, &cert, &key)),
            auth: Some("mailer:s3cret"),
        })
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_over_tls() {
    let pki = TestPki::new();
    for (mode, tls) in [
        ("starttls", SmtpTls::StartTls),
        ("implicit", SmtpTls::Implicit),
    ] {
        let Some(sink) = pki.sink(mode) else { return };
        let mailer = sink
            .mailer()
            .tls(tls)
            .root_certificate_pem(pki.ca_pem.clone())
            .credentials("mailer", "s3cret")
            .build()
            .unwrap();
        mailer
            .send(&login_message(&EnglishTemplates, "alice@example.com", None))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {}", everything_said(&e)));
        let got = sink.received();
        assert_eq!(got.len(), 1, "{mode}");
        assert_eq!(got[0].0["tls"], true, "{mode}: delivered over TLS");
        assert_eq!(got[0].0["login"], "mailer", "{mode}");
        assert!(parts(&got[0].0)[0].1.contains(SPACED));
    }
}

#[tokio::test]
async fn tls_failures_are_permanent_and_never_fall_back_to_plaintext() {
    let pki = TestPki::new();
    let msg = login_message(&EnglishTemplates, "alice@example.com", None);

    // A certificate from an unknown CA is refused.
    let Some(sink) = pki.sink("implicit") else {
        return;
    };
    let untrusted = sink.mailer().tls(SmtpTls::Implicit).build().unwrap();
    let e = untrusted.send(&msg).await.unwrap_err();
    assert!(!e.is_transient(), "{}", everything_said(&e));
    assert!(sink.received().is_empty());
    drop(sink);

    // STARTTLS required but the server does not offer it: no plaintext delivery.
    let Some(plain) = Sink::start() else { return };
    let mailer = plain
        .mailer()
        .tls(SmtpTls::StartTls)
        .root_certificate_pem(pki.ca_pem.clone())
        .build()
        .unwrap();
    let e = mailer.send(&msg).await.unwrap_err();
    assert!(!e.is_transient(), "{}", everything_said(&e));
    assert!(plain.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The login flow over SMTP: a refused send fails closed, leaves no usable code and starts no
// cooldown.

/// Sends through SMTP, and keeps a copy of every message it was asked to send, delivered or not:
/// the test can then try the code of a message the server refused.
struct Tap {
    smtp: SmtpMailer,
    attempted: RecordingMailer,
}

#[async_trait]
impl Mailer for Tap {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        self.attempted.send(message).await?;
        self.smtp.send(message).await
    }
}

/// The sink, and a harness whose mail goes through `SmtpMailer` to it (its `mailer` holds every
/// message the service asked to send, delivered or not).
struct Flow {
    sink: Sink,
    h: Harness,
}

/// A service whose mail goes through `SmtpMailer` to a sink, with a user enrolled in email 2FA
/// by a code that really travelled over SMTP.
async fn email_user_over_smtp() -> Option<Flow> {
    let sink = Sink::start()?;
    let smtp = sink.mailer().build().unwrap();
    let h = Harness::builder()
        .service(move |b, w| {
            b.mailer(Tap {
                smtp,
                attempted: w.doubles.mailer.clone(),
            })
            .display_names(|_user: &str| Some(SCRIPT_NAME.to_owned()))
        })
        .build();
    h.tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let code = delivered_code(&sink, 1);
    h.tf.email().confirm_setup("u1", &code).await.unwrap();
    Some(Flow { sink, h })
}

/// The code in the text part of the `n`-th message the sink received (1-based), checking that
/// exactly `n` have arrived.
fn delivered_code(sink: &Sink, n: usize) -> String {
    let got = sink.received();
    assert_eq!(got.len(), n, "messages delivered");
    let (m, _) = &got[n - 1];
    assert_eq!(m["rcpt_tos"], serde_json::json!(["alice@example.com"]));
    let parts = parts(m);
    assert!(!parts[1].1.contains("<script>"), "escaped name in HTML");
    assert!(
        parts[1].1.contains("&lt;script&gt;"),
        "escaped name in HTML"
    );
    code_in(&parts[0].1).expect("a code in the text part")
}

fn challenge(step: LoginStep) -> Challenge {
    match step {
        LoginStep::Challenge(c) => c,
        LoginStep::Complete(_) => panic!("an email-2FA user must get a challenge"),
    }
}

#[tokio::test]
async fn begin_login_with_smtp_refusing_fails_closed_and_starts_no_cooldown() {
    let Some(flow) = email_user_over_smtp().await else {
        return;
    };
    let Flow { sink, h } = &flow;
    let tf = &h.tf;

    for (refusal, transient) in [
        ("550 5.1.1 mailbox unavailable", false),
        ("451 4.3.0 try again later", true),
    ] {
        let delivered_before = sink.received().len();
        if transient {
            sink.refuse_data(Some(refusal));
        } else {
            sink.refuse_rcpt(Some(refusal));
        }
        let err = tf
            .begin_login(LoginContext::none(), "u1")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Delivery(_)), "{refusal}: {err:?}");
        assert_eq!(err.is_transient(), transient, "{refusal}");
        assert_eq!(err.code(), "delivery_failed");
        assert_eq!(err.http_status(), 503);
        assert_eq!(sink.received().len(), delivered_before, "nothing delivered");
        // The code of the refused message, as the service generated it.
        let refused_code = code_in(&h.mailer.messages().last().unwrap().text).unwrap();

        // The server is back. No clock movement: a cooldown would refuse this at once.
        sink.refuse_rcpt(None);
        sink.refuse_data(None);
        let ch = challenge(tf.begin_login(LoginContext::none(), "u1").await.unwrap());
        assert!(ch.email_sent());
        let code = delivered_code(sink, delivered_before + 1);
        // The successful send, and only it, started the cooldown.
        assert!(matches!(
            tf.resend_code(ch.token()).await,
            Err(Error::Cooldown { .. })
        ));
        // The refused message's code is not usable on the new challenge.
        if refused_code != code {
            assert!(matches!(
                tf.verify_login(LoginContext::none(), ch.token(), &refused_code)
                    .await,
                Err(Error::InvalidCode { .. })
            ));
        }
        let v = tf
            .verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap();
        assert_eq!(v.user(), "u1");
        assert_eq!(v.method(), Some(Method::Email));
    }
}

#[tokio::test]
async fn a_resend_refused_by_smtp_starts_no_cooldown_and_leaves_no_usable_code() {
    let Some(flow) = email_user_over_smtp().await else {
        return;
    };
    let Flow { sink, h } = &flow;
    let tf = &h.tf;
    let ch = challenge(tf.begin_login(LoginContext::none(), "u1").await.unwrap());
    let first = delivered_code(sink, 2);

    h.advance(60); // past the resend cooldown
    sink.refuse_data(Some("554 5.7.1 message refused"));
    let err = tf.resend_code(ch.token()).await.unwrap_err();
    assert!(matches!(err, Error::Delivery(_)), "{err:?}");
    assert!(!err.is_transient());
    let refused = code_in(&h.mailer.messages().last().unwrap().text).unwrap();
    assert_eq!(sink.received().len(), 2, "nothing delivered");

    // Back at once, with no clock movement: the refused send started no cooldown.
    sink.refuse_data(None);
    tf.resend_code(ch.token()).await.unwrap();
    let second = delivered_code(sink, 3);
    for old in [&first, &refused] {
        if *old != second {
            assert!(
                tf.verify_login(LoginContext::none(), ch.token(), old)
                    .await
                    .is_err(),
                "a replaced or refused code must not verify"
            );
        }
    }
    let v = tf
        .verify_login(LoginContext::none(), ch.token(), &second)
        .await
        .unwrap();
    assert_eq!(v.method(), Some(Method::Email));
}
