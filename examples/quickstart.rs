//! The whole life of a user's second factor, printed step by step:
//! enrol TOTP, log in with TOTP, with an email code and with a backup code, regenerate the backup
//! codes, and disable.
//!
//! Run with `cargo run --example quickstart`. It uses the in-memory stores, a mailer that keeps
//! messages in memory (so it can read the emailed code), and a manual clock that it moves forward
//! instead of waiting for the next 30-second TOTP step.

use std::time::Duration;
use twofactor::LoginContext;

use twofactor::{
    account::hash_password, account::verify_password, clock::Clock, clock::SystemClock,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret, Keyring,
    LoginStep, TwoFactorService,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host's own user table, reduced to one password hash.
    let password_hash = hash_password("hunter2-but-longer")?;

    let clock = ManualClock::new(SystemClock.now());
    let mailer = RecordingMailer::new();
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        // In production: Keyring::from_base64(&std::env::var("TWOFACTOR_KEY")?)?
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .password_verifier(move |_user: &str, password: &str| {
            verify_password(password, &password_hash)
        })
        .build()?;
    let user = "user-42";
    // `Verified::method` is `None` only for a user without a second factor.
    let by = |v: &twofactor::Verified| v.method().map_or("no second factor", |m| m.as_str());
    let next_step = || clock.advance(Duration::from_secs(30));
    let app_code = |secret: &str| -> Result<String, twofactor::Error> {
        let secret = TotpSecret::from_base32(secret)?;
        Ok(totp_code(
            secret.as_bytes(),
            TotpParams::default(),
            clock.now().as_unix_secs(),
        ))
    };

    println!("1. Enrol an authenticator app");
    let setup = tf.totp().start_setup(user, "alice@example.com").await?;
    println!("   otpauth URI: {}", setup.otpauth_uri());
    // Rendered on demand from the URI: SVG always, PNG with the `qr-png` feature (default).
    println!("   QR code: {} bytes of SVG", setup.qr_svg()?.len());
    let backup: Vec<String> = setup
        .backup_codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    println!("   backup codes (shown once): {}", backup.join(" "));
    let secret = setup.secret_base32().to_owned();
    tf.totp().confirm_setup(user, &app_code(&secret)?).await?;
    println!("   confirmed with a code from the app: TOTP is on");

    println!("2. Log in with the app");
    next_step();
    let LoginStep::Challenge(challenge) = tf.begin_login(LoginContext::none(), user).await? else {
        return Err("an enrolled user gets a challenge".into());
    };
    let methods: Vec<&str> = challenge.methods().iter().map(|m| m.as_str()).collect();
    println!(
        "   password ok -> challenge, methods: {}",
        methods.join(", ")
    );
    let verified = tf
        .verify_login(LoginContext::none(), challenge.token(), &app_code(&secret)?)
        .await?;
    println!("   verified {} by {}", verified.user(), by(&verified));

    println!("3. Add email as a second factor and log in with an emailed code");
    tf.email().start_setup(user, "alice@example.com").await?;
    let code = last_code(&mailer)?;
    tf.email().confirm_setup(user, &code).await?;
    println!("   email factor confirmed");
    let LoginStep::Challenge(challenge) = tf.begin_login(LoginContext::none(), user).await? else {
        return Err("an enrolled user gets a challenge".into());
    };
    let code = last_code(&mailer)?;
    println!(
        "   the login code was mailed ({} messages so far)",
        mailer.messages().len()
    );
    let verified = tf
        .verify_login(LoginContext::none(), challenge.token(), &code)
        .await?;
    println!("   verified by {}", by(&verified));

    println!("4. Log in with a backup code");
    let LoginStep::Challenge(challenge) = tf.begin_login(LoginContext::none(), user).await? else {
        return Err("an enrolled user gets a challenge".into());
    };
    let first_backup = backup.first().ok_or("setup gives backup codes")?;
    let verified = tf
        .verify_login(LoginContext::none(), challenge.token(), first_backup)
        .await?;
    println!(
        "   verified by {}; {} backup codes left",
        by(&verified),
        verified.backup_codes_remaining()
    );
    // "Remember this device": the token goes in a Secure, HttpOnly, SameSite=Lax cookie.
    let trust = tf
        .devices()
        .trust(&verified, "Firefox on Linux", None)
        .await?;
    let step = tf
        .begin_login(&LoginContext::new().device(trust.token.clone()), user)
        .await?;
    let LoginStep::Complete(by_device) = step else {
        return Err("a trusted device skips the challenge".into());
    };
    println!(
        "   this device trusted; next login verified by {}",
        by(&by_device)
    );

    println!("5. Regenerate the backup codes (needs a fresh code; revokes trusted devices)");
    next_step();
    let fresh = tf
        .backup_codes()
        .regenerate(user, &app_code(&secret)?)
        .await?;
    println!("   {} new codes; the old ones no longer work", fresh.len());

    println!("6. Status");
    let status = tf.account().status(user).await?;
    let methods: Vec<&str> = status.methods.iter().map(|m| m.as_str()).collect();
    println!(
        "   enabled: {}, methods: {}, backup codes left: {}",
        status.enabled,
        methods.join(", "),
        status.backup_codes_remaining
    );

    println!("7. Disable (password + code)");
    next_step();
    tf.account()
        .disable(user, "hunter2-but-longer", &app_code(&secret)?)
        .await?;
    let status = tf.account().status(user).await?;
    println!("   enabled: {}", status.enabled);
    Ok(())
}

/// The code in the most recent message, as the user would read it.
fn last_code(mailer: &RecordingMailer) -> Result<String, Box<dyn std::error::Error>> {
    let message = mailer.messages().pop().ok_or("no message sent")?;
    message
        .text
        .lines()
        .map(|l| l.replace(' ', ""))
        .find(|l| l.len() == 6 && l.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| "no code in the message".into())
}
