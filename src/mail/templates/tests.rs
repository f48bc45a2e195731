use super::*;

const CODE: &str = "042917";
const TTL: Duration = Duration::from_secs(300);

fn every_kind() -> Vec<MailContent<'static>> {
    vec![
        MailContent::LoginCode {
            code: CODE,
            expires_in: TTL,
        },
        MailContent::EmailSetupCode {
            code: CODE,
            expires_in: TTL,
        },
        MailContent::RegistrationCode {
            code: CODE,
            expires_in: TTL,
        },
        MailContent::TwoFactorDisabled,
        MailContent::BackupCodesRegenerated,
        MailContent::TotpReplayRejected,
        MailContent::SecurityCode {
            code: CODE,
            action: SecurityAction::DisableTwoFactor,
            expires_in: TTL,
        },
        MailContent::FactorAdded {
            method: Method::Totp,
        },
        MailContent::FactorRemoved {
            method: Method::SecurityKey,
        },
        MailContent::DeviceTrusted,
        MailContent::RecoveryRequested,
        MailContent::RecoveryReminder,
    ]
}

fn languages() -> Vec<(&'static str, Box<dyn Templates>)> {
    vec![
        ("en", Box::new(EnglishTemplates)),
        ("de", Box::new(GermanTemplates)),
    ]
}

fn has_code(kind: &MailContent<'_>) -> bool {
    matches!(
        kind,
        MailContent::LoginCode { .. }
            | MailContent::EmailSetupCode { .. }
            | MailContent::RegistrationCode { .. }
            | MailContent::SecurityCode { .. }
    )
}

#[test]
fn every_kind_renders_in_both_languages() {
    for (lang, t) in languages() {
        let mut subjects = Vec::new();
        for kind in every_kind() {
            let r = t.render(&MailContext::new("Acme", Some("Alice"), kind));
            assert!(
                r.subject.starts_with("Acme: "),
                "{lang} {kind:?}: {}",
                r.subject
            );
            assert!(r.subject.len() > "Acme: ".len() + 5, "{lang} {kind:?}");
            assert!(r.text.contains("Alice"), "{lang} {kind:?}");
            assert!(r.text.trim_end().ends_with("Acme"), "{lang} {kind:?}");
            assert!(r.html.contains(&format!("<html lang=\"{lang}\">")));
            assert!(r.html.contains("<meta charset=\"utf-8\">"));
            assert!(r.html.trim_end().ends_with("</html>"));
            // The text part is plain: no markup at all.
            assert!(
                !r.text.contains('<') && !r.text.contains('>'),
                "{lang} {kind:?}"
            );
            if has_code(&kind) {
                assert!(r.text.contains("042 917"), "{lang} {kind:?}: spaced code");
                assert!(r.html.contains("042 917"), "{lang} {kind:?}: spaced code");
                assert!(
                    !r.text.contains(CODE),
                    "{lang} {kind:?}: only the spaced form"
                );
            } else {
                assert!(!r.text.contains("042"), "{lang} {kind:?}: no code");
                assert!(!r.html.contains("042"), "{lang} {kind:?}: no code");
            }
            subjects.push(r.subject);
        }
        let mut unique = subjects.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), subjects.len(), "{lang}: one subject per kind");
    }
}

#[test]
fn german_is_german_and_english_is_english() {
    let kind = MailContent::LoginCode {
        code: CODE,
        expires_in: TTL,
    };
    let en = EnglishTemplates.render(&MailContext::new("Acme", None, kind));
    let de = GermanTemplates.render(&MailContext::new("Acme", None, kind));
    assert!(en.text.starts_with("Hello,\n"));
    assert!(en.text.contains("The code expires in 5 minutes."));
    assert!(de.text.starts_with("Hallo,\n"));
    assert!(de.text.contains("Der Code ist 5 Minuten gültig."));
    assert!(de.html.contains("Der Code ist 5 Minuten gültig."));
    assert_ne!(en.subject, de.subject);
}

#[test]
fn expiry_is_stated_in_minutes_rounded_up() {
    for (secs, en, de) in [
        (60, "1 minute.", "1 Minute gültig."),
        (61, "2 minutes.", "2 Minuten gültig."),
        (600, "10 minutes.", "10 Minuten gültig."),
        (1, "1 minute.", "1 Minute gültig."),
    ] {
        let kind = MailContent::RegistrationCode {
            code: CODE,
            expires_in: Duration::from_secs(secs),
        };
        let e = EnglishTemplates.render(&MailContext::new("Acme", None, kind));
        let d = GermanTemplates.render(&MailContext::new("Acme", None, kind));
        assert!(e.text.contains(en), "{secs}: {}", e.text);
        assert!(d.text.contains(de), "{secs}: {}", d.text);
    }
}

#[test]
fn names_and_issuer_are_escaped_in_html() {
    let name = "<script>alert('x')</script>";
    let issuer = "Acme & \"Sons\" <b>";
    for (lang, t) in languages() {
        for kind in every_kind() {
            let r = t.render(&MailContext::new(issuer, Some(name), kind));
            assert!(!r.html.contains("<script>"), "{lang} {kind:?}");
            assert!(!r.html.contains("<b>"), "{lang} {kind:?}");
            assert!(
                r.html
                    .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
                "{lang} {kind:?}"
            );
            assert!(
                r.html.contains("Acme &amp; &quot;Sons&quot; &lt;b&gt;"),
                "{lang} {kind:?}"
            );
            // The text part is not HTML: it shows the name as it is.
            assert!(r.text.contains(name), "{lang} {kind:?}");
        }
    }
}

#[test]
fn line_breaks_in_names_do_not_add_lines() {
    let kind = MailContent::LoginCode {
        code: CODE,
        expires_in: TTL,
    };
    let r = EnglishTemplates.render(&MailContext::new(
        "Acme\r\nBcc: x@example.com",
        Some("Eve\r\n\r\nfake line"),
        kind,
    ));
    assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    assert!(r.text.starts_with("Hello Eve    fake line,\n"));
    assert!(!r.text.contains("\nBcc:"));
}

#[test]
fn without_a_name_the_greeting_is_generic() {
    let r = GermanTemplates.render(&MailContext::new(
        "Acme",
        None,
        MailContent::TwoFactorDisabled,
    ));
    assert!(r.text.starts_with("Hallo,\n"));
    assert!(r.html.contains("<p>Hallo,</p>"));
}

#[test]
fn debug_never_shows_the_code() {
    let kind = MailContent::LoginCode {
        code: CODE,
        expires_in: TTL,
    };
    let r = EnglishTemplates.render(&MailContext::new("Acme", None, kind));
    assert!(!format!("{r:?}").contains("042"));
    let m = StandardMessage {
        lang: "en",
        subject: "s".into(),
        greeting: "g".into(),
        lead: "l".into(),
        code: Some(CODE),
        expiry: None,
        closing: "c".into(),
        signature: "x".into(),
    };
    assert!(!format!("{m:?}").contains("042"));
    assert!(!format!("{kind:?}").contains("042"));
}
