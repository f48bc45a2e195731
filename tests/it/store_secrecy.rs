//! Nothing secret where it should not be (SECURITY.md: INV-2, INV-7; CHK-6, CHK-12, CHK-21,
//! CHK-25).
//!
//! - The stores hold no code in clear and no unkeyed hash of one: every six-digit code is
//!   brute-forced against a dump of both stores with SHA-256 (the plain hash a naive store keeps),
//!   SHA-1 and SHA-256 over the user id and the code, and none is found, while the same search
//!   recovers codes planted that way.
//! - `Debug` of every secret-bearing public type prints no secret.
//! - Errors' `Display` and `Debug` hold no code, token or secret.
//! - The `tracing` output of a whole enrol / login / backup / disable run, captured at TRACE,
//!   holds no code, secret, token or password, while the same capture does see a code that the
//!   development `LogMailer` logs on purpose.

use std::collections::HashSet;
use std::sync::Arc;
use twofactor::LoginContext;

use sha1::Sha1;
use sha2::{Digest, Sha256};
use twofactor::{
    account::BackupCodeSet, clock::Timestamp, mail::LogMailer, store::EnrollmentStore,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingMailer, totp::TotpSecret, ChallengeToken, Error, Keyring, LoginStep, Policy,
    Secret, TwoFactorService,
};

use crate::support::logs::Capture;
use crate::support::{self, code_in, faults, wrong, Harness, PASSWORD, START};

// ---- what a leaked store shows ------------------------------------------------------------

/// Every byte string a leaked store would show: keys, values, backup-code records, enrolment
/// records.
struct Dump {
    blobs: Vec<Vec<u8>>,
}

impl Dump {
    async fn of(h: &Harness, users: &[&str]) -> Dump {
        let now = Timestamp::from_unix_secs(h.now());
        let mut blobs = Vec::new();
        for (k, v) in h.otp.dump(now) {
            blobs.push(k.into_bytes());
            blobs.push(v);
        }
        for user in users {
            for r in h.enrollments.backup_code_records(user) {
                blobs.push(r.lookup.clone());
                if let Some(v) = &r.verifier {
                    blobs.push(v.clone().into_bytes());
                }
            }
            if let Some((rec, _)) = h.enrollments.load(user).await.unwrap() {
                blobs.push(serde_json::to_vec(&rec).unwrap());
                for totp in rec
                    .totp
                    .iter()
                    .chain(rec.pending_totp.as_ref().map(|p| &p.totp))
                {
                    blobs.push(totp.sealed_secret.clone());
                }
                for r in rec.pending_totp.iter().flat_map(|p| &p.backup_codes) {
                    blobs.push(r.lookup.clone());
                }
            }
        }
        assert!(blobs.len() > 10, "the dump is suspiciously small");
        Dump { blobs }
    }

    /// Whether `needle` occurs anywhere as raw bytes.
    fn contains(&self, needle: &[u8]) -> bool {
        self.blobs
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle))
    }

    /// Whether some maximal run of ASCII letters and digits equals `token` (so a six-digit code
    /// is not "found" inside a ten-digit timestamp).
    fn has_token(&self, token: &str) -> bool {
        self.blobs.iter().any(|b| {
            b.split(|c| !c.is_ascii_alphanumeric())
                .any(|t| t == token.as_bytes())
        })
    }

    /// Every 8-byte window of every blob, raw and hex-decoded: a hash stored whole or truncated
    /// to at least 8 bytes, raw or as hex, has its first 8 bytes in this set.
    fn prefixes(&self) -> HashSet<[u8; 8]> {
        let mut set = HashSet::new();
        let mut add = |bytes: &[u8]| {
            for w in bytes.windows(8) {
                set.insert(<[u8; 8]>::try_from(w).unwrap());
            }
        };
        for b in &self.blobs {
            add(b);
            for run in b.split(|c| !c.is_ascii_hexdigit()) {
                if run.len() >= 16 {
                    for start in [0, 1] {
                        let bytes: Vec<u8> = run[start..]
                            .chunks_exact(2)
                            .map(|p| {
                                u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()
                            })
                            .collect();
                        add(&bytes);
                    }
                }
            }
        }
        set
    }
}

/// The unkeyed hashes tried for each candidate code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Unkeyed {
    /// SHA-256(code): the plain hash a naive store keeps.
    Sha256,
    /// SHA-1(code).
    Sha1,
    /// SHA-256(user ‖ code), for the user the search is given.
    Sha256UserCode,
}

/// Tries all 10^6 six-digit codes under every unkeyed hash against the dump; returns what it
/// recovers. (About 15 s of hashing in a debug build, on two threads.)
fn brute_force(dump: &Dump, user: &str) -> HashSet<(Unkeyed, String)> {
    let prefixes = dump.prefixes();
    let hit = |digest: &[u8]| prefixes.contains(&<[u8; 8]>::try_from(&digest[..8]).unwrap());
    let search = |range: std::ops::Range<u32>| {
        let mut found = HashSet::new();
        for n in range {
            let code = format!("{n:06}");
            let c = code.as_bytes();
            if hit(&Sha256::digest(c)) {
                found.insert((Unkeyed::Sha256, code.clone()));
            }
            if hit(&Sha1::digest(c)) {
                found.insert((Unkeyed::Sha1, code.clone()));
            }
            if hit(&Sha256::new().chain_update(user).chain_update(c).finalize()) {
                found.insert((Unkeyed::Sha256UserCode, code.clone()));
            }
        }
        found
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| search(0..500_000));
        let mut found = search(500_000..1_000_000);
        found.extend(a.join().unwrap());
        found
    })
}

#[tokio::test]
async fn the_store_holds_no_code_in_clear_and_no_unkeyed_hash() {
    let h = Harness::new();
    let users = ["reg", "setup", "login", "totp", "pending"];

    // Codes waiting in the store, one per purpose.
    h.tf.email()
        .send_verification_code("reg", "reg@example.com")
        .await
        .unwrap();
    let reg = h.last_code("reg@example.com");
    h.tf.email()
        .start_setup("setup", "setup@example.com")
        .await
        .unwrap();
    let setup = h.last_code("setup@example.com");
    h.enroll_email("login", "login@example.com").await;
    let consumed = h.last_code("login@example.com");
    let challenge = h.challenge("login").await;
    let login = h.last_code("login@example.com");
    h.advance(61);
    h.tf.account()
        .send_step_up_code("login", twofactor::mail::SecurityAction::DisableTwoFactor)
        .await
        .unwrap();
    let step_up = h.last_code("login@example.com");
    // A confirmed TOTP factor with its backup codes and a live challenge, and a pending setup.
    let (secret, backup) = h.enroll_totp("totp").await;
    let totp_challenge = h.challenge("totp").await;
    let pending = h.tf.totp().start_setup("pending", "p").await.unwrap();

    let dump = Dump::of(&h, &users).await;

    // No code in clear (the spaced form the user reads included).
    for code in [&reg, &setup, &consumed, &login, &step_up] {
        assert!(!dump.has_token(code), "code {code} stored in clear");
        assert!(!dump.contains(twofactor::mail::spaced(code).as_bytes()));
    }
    // No backup code, in either form.
    let pending_backup: Vec<String> = pending
        .backup_codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    for code in backup.iter().chain(&pending_backup) {
        assert!(!dump.contains(code.as_bytes()));
        assert!(!dump.contains(code.replace('-', "").as_bytes()));
    }
    // No TOTP secret, in base32 or raw.
    for b32 in [secret.as_str(), pending.secret_base32()] {
        let raw = TotpSecret::from_base32(b32).unwrap();
        assert!(!dump.contains(b32.as_bytes()));
        assert!(!dump.contains(&raw.as_bytes()[..12]));
    }
    // No challenge token, nor its unkeyed hash.
    for token in [challenge.token(), totp_challenge.token()] {
        let t = token.as_str();
        assert!(!dump.contains(t.as_bytes()));
        // The token's first 16 characters after the prefix are the user's key tag, which names
        // the user's keys by design; the random part must appear nowhere.
        assert!(!dump.contains(&t.as_bytes()[21..40]));
        let prefixes = dump.prefixes();
        let d = Sha256::digest(t.as_bytes());
        assert!(!prefixes.contains(&<[u8; 8]>::try_from(&d[..8]).unwrap()));
    }
    // No unkeyed hash of the backup codes.
    let prefixes = dump.prefixes();
    for code in backup.iter().chain(&pending_backup) {
        for form in [code.clone(), code.replace('-', "")] {
            let d = Sha256::digest(form.as_bytes());
            assert!(!prefixes.contains(&<[u8; 8]>::try_from(&d[..8]).unwrap()));
        }
    }

    // Brute force: every six-digit code under every unkeyed hash, against the real dump plus
    // two records planted the way a naive store keeps codes. Exactly the planted ones come out.
    let mut leaky = Dump {
        blobs: dump.blobs.clone(),
    };
    let seed_style = format!(
        "{{\"user\":\"reg\",\"code_hash\":\"{}\"}}",
        hex(&Sha256::digest(reg.as_bytes()))
    );
    leaky.blobs.push(seed_style.into_bytes());
    leaky.blobs.push(
        Sha256::new()
            .chain_update("login")
            .chain_update(login.as_bytes())
            .finalize()
            .to_vec(),
    );
    let found = brute_force(&leaky, "login");
    let planted: HashSet<(Unkeyed, String)> = [
        (Unkeyed::Sha256, reg.clone()),
        (Unkeyed::Sha256UserCode, login.clone()),
    ]
    .into();
    assert_eq!(found, planted, "the real dump gave up a code");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- Debug ------------------------------------------------------------------------------

/// The longest run of hex digits in `s`.
fn longest_hex_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

fn assert_hides(debug: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!debug.contains(s), "{debug:?} shows {s:?}");
    }
}

#[tokio::test]
async fn debug_of_every_secret_bearing_type_prints_no_secret() {
    // Secret.
    let s = Secret::new("731946".to_owned());
    assert_hides(&format!("{s:?} {s:#?}"), &["731946"]);

    // TotpSecret: neither base32 nor the bytes, in any form.
    let b32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let ts = TotpSecret::from_base32(b32).unwrap();
    let d = format!("{ts:?} {ts:#?}");
    assert_hides(&d, &[b32, &hex(ts.as_bytes()), "72, 101", "0x48"]);

    // Keyring: not the master key, nor anything longer than a key id.
    let master = Keyring::generate_base64();
    let keys = Keyring::from_base64(&master).unwrap();
    let d = format!("{keys:?} {keys:#?}");
    assert_hides(&d, &[&master, &master[..16]]);
    assert!(longest_hex_run(&d) <= 8, "{d}");
    let rotated = Keyring::generate().rotate_to(&keys);
    assert!(longest_hex_run(&format!("{rotated:?}")) <= 8);

    // BackupCodeSet.
    let set = BackupCodeSet::generate(10);
    let d = format!("{set:?} {set:#?} {:?}", set.codes());
    for c in set.codes() {
        assert_hides(&d, &[c.expose(), &c.expose().replace('-', "")]);
    }

    // The service, its setup, challenge, token, messages.
    let h = Harness::with(Policy::default(), keys.clone());
    let d = format!("{:?} {:#?}", h.tf, h.tf);
    assert_hides(&d, &[&master, &master[..16]]);
    assert!(longest_hex_run(&d) <= 8, "{d}");

    let setup = h.tf.totp().start_setup("u1", "alice").await.unwrap();
    let mut secrets: Vec<String> = vec![
        setup.secret_base32().to_owned(),
        setup.otpauth_uri().to_owned(),
        setup.secret_base32()[..16].to_owned(),
    ];
    secrets.extend(setup.backup_codes().iter().map(|c| c.expose().to_owned()));
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_hides(&format!("{setup:?} {setup:#?}"), &refs);
    h.tf.totp()
        .confirm_setup("u1", &h.totp(setup.secret_base32()))
        .await
        .unwrap();
    h.advance(30);
    h.tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let m = h.mailer.last_to("alice@example.com").unwrap();
    let code = code_in(&m.text).unwrap();
    assert_hides(
        &format!("{m:?} {m:#?}"),
        &[&code, &twofactor::mail::spaced(&code)],
    );
    h.tf.email().confirm_setup("u1", &code).await.unwrap();

    let step = h.tf.begin_login(LoginContext::none(), "u1").await.unwrap();
    let LoginStep::Challenge(ch) = &step else {
        panic!("expected a challenge")
    };
    let token = ch.token().as_str().to_owned();
    let login_code = h.last_code("alice@example.com");
    let m = h.mailer.last_to("alice@example.com").unwrap();
    let d = format!("{step:?} {step:#?} {ch:?} {:?} {m:?} {m:#?}", ch.token());
    assert_hides(
        &d,
        &[
            &token,
            &token[5..],
            &login_code,
            &twofactor::mail::spaced(&login_code),
        ],
    );
    let parsed = ChallengeToken::parse(&token).unwrap();
    assert_hides(&format!("{parsed:?} {parsed:#?}"), &[&token[5..]]);

    // What a success and the status show.
    let v =
        h.tf.verify_login(LoginContext::none(), ch.token(), &login_code)
            .await
            .unwrap();
    let st = h.tf.account().status("u1").await.unwrap();
    let codes =
        h.tf.backup_codes()
            .regenerate("u1", &h.totp(setup.secret_base32()))
            .await;
    let codes = codes.unwrap();
    let d = format!("{v:?} {st:?} {codes:?} {:?}", h.events.events());
    let mut all = refs.clone();
    all.extend([token.as_str(), login_code.as_str()]);
    let new: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    all.extend(new.iter().map(String::as_str));
    assert_hides(&d, &all);
}

// ---- errors -----------------------------------------------------------------------------

fn assert_error_hides(e: &Error, secrets: &[&str]) {
    let text = format!("{e} | {e:?} | {e:#?} | {}", e.public_message());
    let mut source = std::error::Error::source(e);
    let mut chain = String::new();
    while let Some(s) = source {
        chain.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    assert_hides(&format!("{text}{chain}"), secrets);
}

#[tokio::test]
async fn errors_hold_no_code_token_or_secret() {
    let h = Harness::new();
    let (secret, backup) = h.enroll_totp("u1").await;
    h.enroll_email("u1", "alice@example.com").await;
    let ch = h.challenge("u1").await;
    let email_code = h.last_code("alice@example.com");
    let totp = h.totp(&secret);
    let token = ch.token().as_str().to_owned();
    let secrets = [
        email_code.as_str(),
        totp.as_str(),
        &token,
        &token[5..],
        &secret,
        &backup[0],
        PASSWORD,
    ];

    let mut errors = Vec::new();
    // Wrong and malformed codes, in every flow that takes one; a success after each round ends
    // the run of failures before it locks the user.
    for input in [
        wrong(&email_code),
        format!("{email_code}x"),
        format!("{email_code}{email_code}{email_code}"),
        format!("{}{}", backup[0], "Z"),
        format!("{email_code}\u{0663}"),
    ] {
        errors.push(
            h.tf.verify_login(LoginContext::none(), ch.token(), &input)
                .await
                .unwrap_err(),
        );
        errors.push(
            h.tf.account()
                .disable("u1", PASSWORD, &input)
                .await
                .unwrap_err(),
        );
        errors.push(
            h.tf.backup_codes()
                .regenerate("u1", &input)
                .await
                .unwrap_err(),
        );
        errors.push(
            h.tf.email()
                .verify_registration_code("u1", &input)
                .await
                .unwrap_err(),
        );
        h.advance(30);
        let ok = h.challenge("u1").await;
        h.tf.verify_login(LoginContext::none(), ok.token(), &h.totp(&secret))
            .await
            .unwrap();
    }
    // A wrong password with the right code.
    errors.push(
        h.tf.account()
            .disable("u1", &format!("{PASSWORD}!"), &totp)
            .await
            .unwrap_err(),
    );
    // A replayed code; tampered and foreign tokens.
    let ch2 = h.challenge("u1").await;
    h.advance(30);
    let fresh = h.totp(&secret);
    h.tf.verify_login(LoginContext::none(), ch2.token(), &fresh)
        .await
        .unwrap();
    let ch3 = h.challenge("u1").await;
    errors.push(
        h.tf.verify_login(LoginContext::none(), ch3.token(), &fresh)
            .await
            .unwrap_err(),
    );
    errors.push(ChallengeToken::parse(&format!("{token}x")).unwrap_err());
    errors.push(ChallengeToken::parse(&token[..token.len() - 1]).unwrap_err());
    // Bad secrets and keys.
    errors.push(TotpSecret::from_base32(&format!("{secret}1")).unwrap_err());
    errors.push(TotpSecret::from_base32(&secret[..20]).unwrap_err());
    let master = Keyring::generate_base64();
    errors.push(Keyring::from_base64(&master[..40]).unwrap_err());
    errors.push(Keyring::from_base64(&format!("{master}!")).unwrap_err());
    // Lockout.
    for _ in 0..12 {
        let ch = match h.tf.begin_login(LoginContext::none(), "u1").await {
            Ok(LoginStep::Challenge(c)) => c,
            Ok(LoginStep::Complete(_)) => panic!("no challenge"),
            Err(e) => {
                errors.push(e);
                break;
            }
        };
        errors.push(
            h.tf.verify_login(LoginContext::none(), ch.token(), &wrong(&h.totp(&secret)))
                .await
                .unwrap_err(),
        );
    }
    let codes: HashSet<&str> = errors.iter().map(Error::code).collect();
    for expected in [
        "invalid_code",
        "malformed_code",
        "code_reused",
        "invalid_challenge",
        "invalid_password",
        "invalid_input",
        "invalid_config",
        "locked",
    ] {
        assert!(codes.contains(expected), "no {expected} among {codes:?}");
    }
    for e in &errors {
        assert_error_hides(e, &secrets);
        assert_error_hides(e, &[&master, &master[..16], &fresh]);
    }
}

// ---- logs -------------------------------------------------------------------------------

/// A service with the default event sink (the `tracing` log), on memory stores or the faulty
/// wrappers.
fn logging_service(
    mailer: RecordingMailer,
    clock: ManualClock,
    master: &str,
    faults: Option<Arc<faults::Faults>>,
) -> TwoFactorService {
    let otp = Arc::new(MemoryOtpStore::new());
    let enrollments = Arc::new(MemoryEnrollmentStore::new());
    let builder = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::from_base64(master).unwrap())
        .clock(clock)
        .password_verifier(|_u: &str, p: &str| p == PASSWORD)
        .display_names(|u: &str| Some(format!("User {u}")));
    let builder = match faults {
        Some(f) => builder
            .otp_store(faults::FaultyOtpStore {
                inner: otp,
                faults: f.clone(),
            })
            .enrollments(faults::FaultyEnrollmentStore {
                inner: enrollments,
                faults: f.clone(),
            })
            .mailer(faults::FaultyMailer {
                inner: mailer,
                faults: f,
            }),
        None => builder
            .otp_store(otp)
            .enrollments(enrollments)
            .mailer(mailer),
    };
    builder.build().unwrap()
}

/// Everything secret seen during a run, to look for in the logs.
#[derive(Default)]
struct Secrets {
    /// Six-digit codes: looked for as whole tokens.
    codes: Vec<String>,
    /// Longer secrets: looked for as substrings.
    long: Vec<String>,
}

impl Secrets {
    fn totp_secret(&mut self, b32: &str) {
        let raw = TotpSecret::from_base32(b32).unwrap();
        self.long.push(b32.to_owned());
        self.long.push(b32.to_ascii_lowercase());
        self.long.push(hex(raw.as_bytes()));
        self.long.push(
            format!("{:?}", &raw.as_bytes()[..4])
                .trim_end_matches(']')
                .to_owned(),
        );
    }

    fn backup(&mut self, codes: &[Secret]) {
        for c in codes {
            self.long.push(c.expose().to_owned());
            self.long.push(c.expose().replace('-', ""));
        }
    }

    fn token(&mut self, t: &ChallengeToken) {
        self.long.push(t.as_str().to_owned());
        self.long.push(t.as_str()[5..].to_owned());
    }

    /// A numeric code, in the forms a user reads and types.
    fn code(&mut self, c: &str) {
        self.long.push(twofactor::mail::spaced(c));
        self.codes.push(c.to_owned());
    }

    fn mails(&mut self, mailer: &RecordingMailer) {
        for m in mailer.messages() {
            if let Some(c) = code_in(&m.text) {
                self.code(&c);
            }
        }
    }

    fn assert_absent(&self, logs: &str) {
        let tokens: HashSet<&str> = logs.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        for c in &self.codes {
            assert!(
                !tokens.contains(c.as_str()),
                "code {c} in the logs:\n{logs}"
            );
        }
        for s in &self.long {
            assert!(!logs.contains(s.as_str()), "{s} in the logs:\n{logs}");
        }
    }
}

/// Logs in with `code` on a fresh challenge.
async fn login(tf: &TwoFactorService, user: &str, code: &str) -> Result<(), Error> {
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), user).await? else {
        panic!("expected a challenge")
    };
    tf.verify_login(LoginContext::none(), ch.token(), code)
        .await
        .map(|_| ())
}

fn totp_now(clock: &ManualClock, b32: &str) -> String {
    let secret = TotpSecret::from_base32(b32).unwrap();
    let now = twofactor::clock::Clock::now(clock).as_unix_secs();
    twofactor::totp::totp_code(
        secret.as_bytes(),
        twofactor::totp::TotpParams::default(),
        now,
    )
}

#[tokio::test]
async fn a_whole_run_logs_no_code_secret_token_or_password() {
    let capture = Capture::default();
    let _guard = capture.install();
    let mut secrets = Secrets::default();
    let master = Keyring::generate_base64();
    secrets.long.push(master.clone());
    secrets.long.push(PASSWORD.to_owned());
    let clock = ManualClock::new(Timestamp::from_unix_secs(START));
    let tick = |s: u64| clock.advance(std::time::Duration::from_secs(s));
    let mailer = RecordingMailer::new();
    let tf = logging_service(mailer.clone(), clock.clone(), &master, None);
    let mut used_totp = Vec::new();

    // Registration.
    tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    let reg = support::code_in(&mailer.last_to("alice@example.com").unwrap().text).unwrap();
    tf.email()
        .verify_registration_code("u1", &wrong(&reg))
        .await
        .unwrap_err();
    tf.email()
        .verify_registration_code("u1", &reg)
        .await
        .unwrap();

    // TOTP enrolment, with a wrong code first.
    let setup = tf
        .totp()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    secrets.totp_secret(setup.secret_base32());
    secrets.long.push(setup.otpauth_uri().to_owned());
    secrets.backup(setup.backup_codes());
    let b32 = setup.secret_base32().to_owned();
    let code = totp_now(&clock, &b32);
    tf.totp()
        .confirm_setup("u1", &wrong(&code))
        .await
        .unwrap_err();
    tf.totp().confirm_setup("u1", &code).await.unwrap();
    used_totp.push(code.clone());

    // Email 2FA enrolment.
    tf.email()
        .start_setup("u1", "alice@example.com")
        .await
        .unwrap();
    let c = support::code_in(&mailer.last_to("alice@example.com").unwrap().text).unwrap();
    tf.email().confirm_setup("u1", &c).await.unwrap();

    // Logins: replayed TOTP (and its notification), TOTP, email code with a resend, backup code.
    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!()
    };
    secrets.token(ch.token());
    assert_eq!(
        tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap_err()
            .code(),
        "code_reused"
    );
    tick(30);
    let code = totp_now(&clock, &b32);
    used_totp.push(code.clone());
    tf.verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();

    let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap() else {
        panic!()
    };
    secrets.token(ch.token());
    tick(61);
    tf.resend_code(ch.token()).await.unwrap();
    assert_eq!(
        tf.resend_code(ch.token()).await.unwrap_err().code(),
        "cooldown"
    );
    let c = support::code_in(&mailer.last_to("alice@example.com").unwrap().text).unwrap();
    tf.verify_login(LoginContext::none(), ch.token(), &wrong(&c))
        .await
        .unwrap_err();
    tf.verify_login(LoginContext::none(), ch.token(), &c)
        .await
        .unwrap();
    login(&tf, "u1", setup.backup_codes()[0].expose())
        .await
        .unwrap();

    // Lockout: ten wrong codes across challenges, then a refused login.
    for _ in 0..2 {
        let LoginStep::Challenge(ch) = tf.begin_login(LoginContext::none(), "u1").await.unwrap()
        else {
            panic!()
        };
        secrets.token(ch.token());
        for _ in 0..5 {
            let w = wrong(&totp_now(&clock, &b32));
            used_totp.push(w.clone());
            tf.verify_login(LoginContext::none(), ch.token(), &w)
                .await
                .unwrap_err();
        }
    }
    assert_eq!(
        tf.begin_login(LoginContext::none(), "u1")
            .await
            .unwrap_err()
            .code(),
        "locked"
    );
    tick(16 * 60);

    // Regenerate with a backup code, then with a step-up email code; disable with a backup code.
    let codes = tf
        .backup_codes()
        .regenerate("u1", setup.backup_codes()[1].expose())
        .await
        .unwrap();
    secrets.backup(&codes);
    tf.account()
        .send_step_up_code("u1", twofactor::mail::SecurityAction::RegenerateBackupCodes)
        .await
        .unwrap();
    let c = support::code_in(&mailer.last_to("alice@example.com").unwrap().text).unwrap();
    let codes = tf.backup_codes().regenerate("u1", &c).await.unwrap();
    secrets.backup(&codes);
    tf.account()
        .disable("u1", "not the password", codes[0].expose())
        .await
        .unwrap_err();
    tf.account()
        .disable("u1", PASSWORD, codes[0].expose())
        .await
        .unwrap();

    // The warnings of failing parts, on a second service whose stores and mailer can fail:
    // an undelivered login code (TOTP still answers), an undelivered replay notification, and a
    // lock that could not be recorded.
    let f = faults::Faults::new();
    let mailer2 = RecordingMailer::new();
    let tf2 = logging_service(mailer2.clone(), clock.clone(), &master, Some(f.clone()));
    let enrol = |user: &'static str| {
        let tf2 = tf2.clone();
        let clock = clock.clone();
        async move {
            let setup = tf2.totp().start_setup(user, user).await.unwrap();
            let b32 = setup.secret_base32().to_owned();
            let code = totp_now(&clock, &b32);
            tf2.totp().confirm_setup(user, &code).await.unwrap();
            (setup, code)
        }
    };
    let (setup2, code2) = enrol("u2").await;
    let (setup3, code3) = enrol("u3").await;
    for s in [&setup2, &setup3] {
        secrets.totp_secret(s.secret_base32());
        secrets.backup(s.backup_codes());
    }
    used_totp.extend([code2, code3]);
    tf2.email()
        .start_setup("u2", "bob@example.com")
        .await
        .unwrap();
    let c = support::code_in(&mailer2.last_to("bob@example.com").unwrap().text).unwrap();
    tf2.email().confirm_setup("u2", &c).await.unwrap();
    tick(30);

    // Which call of begin_login mails the code, then a begin_login with that call failing.
    f.arm(faults::Mode::Off, true);
    let LoginStep::Challenge(probe) = tf2.begin_login(LoginContext::none(), "u2").await.unwrap()
    else {
        panic!()
    };
    secrets.token(probe.token());
    let mail_at = f.trace().iter().position(|n| *n == "mail.send").unwrap() as u64 + 1;
    f.arm(
        faults::Mode::Once {
            at: mail_at,
            after: false,
        },
        true,
    );
    let LoginStep::Challenge(ch) = tf2.begin_login(LoginContext::none(), "u2").await.unwrap()
    else {
        panic!()
    };
    f.disarm();
    assert!(!ch.email_sent());
    secrets.token(ch.token());
    let code = totp_now(&clock, setup2.secret_base32());
    used_totp.push(code.clone());
    tf2.verify_login(LoginContext::none(), ch.token(), &code)
        .await
        .unwrap();

    // A replay: which call sends the notification, then a replay with that call failing.
    for fail in [false, true] {
        let LoginStep::Challenge(ch) = tf2.begin_login(LoginContext::none(), "u2").await.unwrap()
        else {
            panic!()
        };
        secrets.token(ch.token());
        if fail {
            let notify_at = f.trace().iter().position(|n| *n == "mail.send").unwrap() as u64 + 1;
            f.arm(
                faults::Mode::Once {
                    at: notify_at,
                    after: false,
                },
                false,
            );
        } else {
            f.arm(faults::Mode::Off, true);
        }
        let e = tf2
            .verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "code_reused");
        if fail {
            assert_eq!(f.injected().len(), 1);
            f.disarm();
        }
    }

    // Nine wrong codes for u3, then a tenth whose lock cannot be written (its last call).
    let b32_3 = setup3.secret_base32().to_owned();
    let mut calls = 0;
    for i in 0..10 {
        if i % 5 == 0 {
            tick(1);
        }
        let LoginStep::Challenge(ch) = tf2.begin_login(LoginContext::none(), "u3").await.unwrap()
        else {
            panic!()
        };
        secrets.token(ch.token());
        let w = wrong(&totp_now(&clock, &b32_3));
        used_totp.push(w.clone());
        if i == 9 {
            f.arm(faults::Mode::From { at: calls + 1 }, true);
        } else {
            f.arm(faults::Mode::Off, true);
        }
        assert_eq!(
            tf2.verify_login(LoginContext::none(), ch.token(), &w)
                .await
                .unwrap_err()
                .code(),
            "invalid_code"
        );
        if i == 9 {
            assert_eq!(f.injected()[0].1, "otp.settle");
            f.disarm();
        } else {
            calls = f.calls();
        }
    }

    secrets.mails(&mailer);
    secrets.mails(&mailer2);
    for c in &used_totp {
        secrets.code(c);
    }
    drop(_guard);

    let logs = capture.text();
    // The capture works: every event was logged, with its level.
    for needle in [
        "Verified",
        "CodeRejected",
        "LockedOut",
        "ReplayRejected",
        "FactorEnabled",
        "FactorDisabled",
        "BackupCodeUsed",
        "BackupCodesRegenerated",
        "CodeSent",
        "WARN",
        "INFO",
        "login code not sent",
        "notification not delivered",
        "setting a lock failed",
    ] {
        assert!(logs.contains(needle), "{needle} not logged:\n{logs}");
    }
    assert!(secrets.codes.len() >= 12 && secrets.long.len() >= 40);
    secrets.assert_absent(&logs);
}

/// The capture above would see a code if one were logged: the development mailer logs it.
#[tokio::test]
async fn the_log_capture_sees_a_code_that_is_logged() {
    let capture = Capture::default();
    let guard = capture.install();
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(LogMailer)
        .build()
        .unwrap();
    tf.email()
        .send_verification_code("u1", "alice@example.com")
        .await
        .unwrap();
    drop(guard);
    let logs = capture.text();
    let code = code_in(&logs).expect("the development mailer logs the code");
    let mut secrets = Secrets::default();
    secrets.code(&code);
    let caught = std::panic::catch_unwind(|| secrets.assert_absent(&logs));
    assert!(caught.is_err(), "the check missed a logged code");
}
