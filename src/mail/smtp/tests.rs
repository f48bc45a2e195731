use super::*;

#[test]
fn url_with_everything() {
    let b = SmtpMailer::from_url(
        "smtp://mailer%40acme.example:s3cr%3At@mail.acme.example:2525\
         ?tls=starttls&from=Acme%20%3Cno-reply%40acme.example%3E&reply_to=help%40acme.example\
         &subject_prefix=%5BAcme%5D+&timeout=7&pool_max_size=3&hello_name=app.acme.example",
    )
    .unwrap();
    assert_eq!(b.host, "mail.acme.example");
    assert_eq!(b.port, Some(2525));
    assert_eq!(b.tls, SmtpTls::StartTls);
    let (user, password) = b.credentials.as_ref().unwrap();
    assert_eq!(user, "mailer@acme.example");
    assert_eq!(password.as_str(), "s3cr:t");
    assert_eq!(b.from.as_deref(), Some("Acme <no-reply@acme.example>"));
    assert_eq!(b.reply_to.as_deref(), Some("help@acme.example"));
    assert_eq!(b.subject_prefix, "[Acme] ");
    assert_eq!(b.timeout, Duration::from_secs(7));
    assert_eq!(b.pool_max_size, 3);
    assert_eq!(b.hello_name.as_deref(), Some("app.acme.example"));
    let m = b.build().unwrap();
    assert_eq!(m.inner.port, 2525);
    assert_eq!(m.inner.message_id_domain, "acme.example");
}

#[test]
fn scheme_and_tls_parameter_pick_mode_and_port() {
    let cases = [
        ("smtp://h.example?from=a%40b.c", SmtpTls::StartTls, 587),
        ("smtps://h.example?from=a%40b.c", SmtpTls::Implicit, 465),
        (
            "smtp://h.example?tls=implicit&from=a%40b.c",
            SmtpTls::Implicit,
            465,
        ),
        ("smtp://127.0.0.1?tls=none&from=a%40b.c", SmtpTls::None, 25),
        (
            "smtp://[::1]:1025?tls=none&from=a%40b.c",
            SmtpTls::None,
            1025,
        ),
        ("smtp://localhost?tls=none&from=a%40b.c", SmtpTls::None, 25),
    ];
    for (url, tls, port) in cases {
        let m = SmtpMailer::from_url(url).unwrap().build().unwrap();
        assert_eq!(m.inner.tls, tls, "{url}");
        assert_eq!(m.inner.port, port, "{url}");
    }
}

#[test]
fn bad_urls_are_config_errors_without_the_password() {
    for url in [
        "http://h.example?from=a%40b.c",
        "smtp://u:hunter2@h.example?tls=maybe",
        "smtp://u:hunter2@h.example?colour=blue",
        "smtp://u:hunter2@h.example?timeout=soon",
        "smtp://u:hunter2@h.example?pool_max_size=-1",
        "not a url hunter2",
        "smtp://u:hunter2@?from=a%40b.c",
    ] {
        let e = SmtpMailer::from_url(url).unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{url}");
        assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        assert!(!format!("{e:?}").contains("hunter2"), "{url}");
    }
}

#[test]
fn plaintext_is_refused_for_remote_hosts() {
    for host in ["smtp.example.com", "10.0.0.5", "localhost.example.com"] {
        let e = SmtpMailer::builder(host)
            .tls(SmtpTls::None)
            .from("a@b.example")
            .build()
            .unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{host}");
    }
    for host in [
        "localhost",
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "mail.localhost",
    ] {
        SmtpMailer::builder(host)
            .tls(SmtpTls::None)
            .from("a@b.example")
            .build()
            .unwrap();
    }
    SmtpMailer::builder("relay.internal")
        .tls(SmtpTls::None)
        .dangerous_allow_plaintext_to_remote_host()
        .from("a@b.example")
        .build()
        .unwrap();
}

#[test]
fn build_checks_addresses_and_pool() {
    let base = || SmtpMailer::builder("smtp.example.com");
    assert!(base().build().is_err(), "from is required");
    assert!(base().from("not an address").build().is_err());
    assert!(base().from("a@b.example").reply_to("nope").build().is_err());
    assert!(base().from("a@b.example").pool_max_size(0).build().is_err());
    assert!(base()
        .from("a@b.example")
        .root_certificate_pem("garbage")
        .build()
        .is_err());
    assert!(base().from("Acme <a@b.example>").build().is_ok());
}

#[test]
fn debug_redacts_the_password() {
    let b = SmtpMailer::builder("smtp.example.com")
        .credentials("mailer", "hunter2")
        .from("a@b.example");
    let shown = format!("{b:?}");
    assert!(
        shown.contains("mailer") && !shown.contains("hunter2"),
        "{shown}"
    );
    let m = b.build().unwrap();
    assert!(!format!("{m:?}").contains("hunter2"));
}

#[test]
fn composed_message_has_both_parts_and_headers() {
    let m = SmtpMailer::builder("localhost")
        .tls(SmtpTls::None)
        .from("Acme <no-reply@acme.example>")
        .reply_to("help@acme.example")
        .subject_prefix("[test] ")
        .build()
        .unwrap();
    let msg = Message {
        to: "alice@example.com".into(),
        purpose: super::super::MessagePurpose::LoginCode,
        subject: "Acme: your code\r\nBcc: eve@example.com".into(),
        text: "code 123 456".into(),
        html: "<p>code 123 456</p>".into(),
    };
    let raw = String::from_utf8(m.compose(&msg).unwrap().formatted()).unwrap();
    assert!(raw.contains("Subject: [test] Acme: your code  Bcc: eve@example.com\r\n"));
    assert!(!raw.contains("\r\nBcc:"));
    assert!(raw.contains("\r\nDate: "));
    assert!(raw.contains("@acme.example>\r\n"));
    assert!(raw.contains("Message-ID: <"));
    assert!(raw.contains("Reply-To: help@acme.example\r\n"));
    assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
    assert!(raw.contains("multipart/alternative"));
    assert!(raw.contains("text/plain"));
    assert!(raw.contains("text/html"));
    assert!(m
        .compose(&Message {
            to: "not an address".into(),
            ..msg
        })
        .is_err());
}

#[test]
fn sending_outside_tokio_is_a_permanent_error() {
    let m = SmtpMailer::builder("localhost")
        .tls(SmtpTls::None)
        .from("a@b.example")
        .build()
        .unwrap();
    let e = m.transport().err().unwrap();
    assert!(!e.is_transient());
}
