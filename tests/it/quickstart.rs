//! `examples/quickstart.rs` as a reader sees it: it runs to the end and prints each method by its
//! name (`by totp`), never a Rust debug form such as `by Some(Totp)`.
//!
//! `cargo test` builds the examples beside the test binaries; this test runs the built one. When
//! only this binary was built (`cargo test --test it`), it skips and says so on the real standard
//! error (see `support::skip`).

use std::process::Command;

use crate::support::tools::example_binary;

#[test]
fn the_quickstart_names_each_method_plainly() {
    let Some(bin) = example_binary("quickstart") else {
        return;
    };
    let out = Command::new(&bin).output().expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shown in [
        "verified user-42 by totp",
        "verified by email",
        "verified by backup_code; 9 backup codes left",
        "next login verified by trusted_device",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?} in:\n{stdout}");
    }
    for debug_form in ["Some(", "Totp", "BackupCode", "Email]"] {
        assert!(!stdout.contains(debug_form), "{debug_form:?} in:\n{stdout}");
    }
}

#[test]
fn a_method_displays_as_its_stable_name() {
    use twofactor::Method;
    for m in [
        Method::Totp,
        Method::Email,
        Method::Sms,
        Method::BackupCode,
        Method::TrustedDevice,
    ] {
        assert_eq!(m.to_string(), m.as_str());
    }
}
