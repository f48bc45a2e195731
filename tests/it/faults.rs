//! Fail closed (SECURITY.md: INV-8, CHK-18): a store or mailer that fails at
//! call k, for every k of a flow, gives no wrongful success, a typed error, and loses no
//! enrolment.
//!
//! Each flow is first run without faults to count its store and mailer calls, n. Then, for every
//! k in 1..=n and three kinds of fault, a fresh service on faulty wrappers
//! (tests/it/support/faults.rs) runs the flow with call k failing:
//! - once, before the call (nothing was done);
//! - once, after the call (the change was made but the answer was lost, as with a timeout);
//! - from call k on (an outage).
//!
//! Injected errors alternate between transient and permanent with k. For each run:
//! - with a wrong, replayed or otherwise illegitimate input the flow never succeeds;
//! - a failed flow reports `Error::Store` or `Error::Delivery` (whichever kind of call failed)
//!   with the `is_transient` the wrapper set, unless the injected failure was one the flow may
//!   ignore and it reports its natural outcome;
//! - afterwards, with the store healthy, the enrolment is whole (the factor enabled with its
//!   methods and backup codes, or not enabled at all — never half) and the flow can be retried to
//!   completion.

use twofactor::LoginContext;
use twofactor::{account::BackupCodeSet, account::Status, Error, LoginStep, Method, Policy};

use crate::support::faults::{self, Faults, Mode};
use crate::support::{self, wrong, Harness, PASSWORD};

const USER: &str = "u1";
const ADDR: &str = "alice@example.com";
const PHONE: &str = "+491701234567";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// `begin_login` + `verify_login` with a TOTP code.
    TotpLogin,
    /// `begin_login` (mails a code) + `verify_login` with it.
    EmailLogin,
    /// `begin_login` + `verify_login` with a backup code.
    BackupLogin,
    /// `start_totp_setup` + `confirm_totp_setup`.
    TotpConfirm,
    /// `start_email_setup` (mails a code) + `confirm_email_setup`.
    EmailConfirm,
    /// `begin_login` (texts a code) + `verify_login` with it.
    SmsLogin,
    /// `start_sms_setup` (texts a code) + `confirm_sms_setup`.
    SmsConfirm,
    /// `disable` with the password and a TOTP code.
    Disable,
    /// `regenerate_backup_codes` with a TOTP code.
    Regenerate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    /// The right code (and password).
    Right,
    /// A wrong code.
    Wrong,
    /// The right code, already used once.
    Replay,
    /// The right code with a wrong password (disable only).
    WrongPassword,
}

/// What the flow and its set-up learnt, for the checks afterwards.
#[derive(Default)]
struct Ctx {
    /// The TOTP secret (enrolled before, or from the setup inside the flow).
    secret: Option<String>,
    /// The backup codes in force before the flow (or shown by the setup inside the flow).
    backup: Vec<String>,
    /// A code used before the flow, for replays.
    used: Option<String>,
}

fn assert_status(st: &Status, enabled: bool, methods: &[Method], backup: u32) {
    assert_eq!(st.enabled, enabled, "{st:?}");
    assert_eq!(st.methods, methods, "{st:?}");
    assert_eq!(st.backup_codes_remaining, backup, "{st:?}");
}

async fn status(h: &Harness) -> Status {
    h.tf.account().status(USER).await.unwrap()
}

async fn setup(flow: Flow, input: Input, h: &Harness) -> Ctx {
    let mut ctx = Ctx::default();
    match flow {
        Flow::TotpLogin | Flow::BackupLogin | Flow::Regenerate | Flow::Disable => {
            let (secret, backup) = h.enroll_totp(USER).await;
            ctx.secret = Some(secret);
            ctx.backup = backup;
        }
        Flow::EmailLogin => h.enroll_email(USER, ADDR).await,
        Flow::SmsLogin => h.enroll_sms(USER, PHONE).await,
        Flow::TotpConfirm | Flow::EmailConfirm | Flow::SmsConfirm => {}
    }
    if flow == Flow::Disable {
        h.enroll_email(USER, ADDR).await;
    }
    if input == Input::Replay {
        let code = match flow {
            Flow::TotpLogin => h.totp(ctx.secret.as_deref().unwrap()),
            Flow::BackupLogin => ctx.backup[0].clone(),
            _ => unreachable!("no replay variant of {flow:?}"),
        };
        let ch = h.challenge(USER).await;
        h.tf.verify_login(LoginContext::none(), ch.token(), &code)
            .await
            .unwrap();
        ctx.used = Some(code);
    }
    h.mailer.clear();
    h.texts.clear();
    ctx
}

/// A login challenge, or the error `begin_login` gave. A completed login of an enrolled user
/// would be a wrongful success.
async fn begin(h: &Harness) -> Result<twofactor::Challenge, Error> {
    match h.tf.begin_login(LoginContext::none(), USER).await? {
        LoginStep::Challenge(c) => Ok(c),
        LoginStep::Complete(v) => panic!("an enrolled user logged in without a code: {v:?}"),
    }
}

/// A TOTP code for the flow's input.
fn totp_input(h: &Harness, ctx: &Ctx, input: Input) -> String {
    let right = h.totp(ctx.secret.as_deref().unwrap());
    match input {
        Input::Right | Input::WrongPassword => right,
        Input::Wrong => wrong(&right),
        Input::Replay => ctx.used.clone().unwrap(),
    }
}

/// A sent code for the flow's input: as sent, or a wrong one.
fn sent_input(code: String, input: Input) -> String {
    if input == Input::Wrong {
        wrong(&code)
    } else {
        code
    }
}

/// The flow itself, run with faults armed.
async fn run(flow: Flow, input: Input, h: &Harness, ctx: &mut Ctx) -> Result<(), Error> {
    match flow {
        Flow::TotpLogin => {
            let code = totp_input(h, ctx, input);
            let ch = begin(h).await?;
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &code)
                    .await?;
            assert_eq!(v.method(), Some(Method::Totp));
        }
        Flow::EmailLogin => {
            let ch = begin(h).await?;
            assert!(ch.email_sent());
            let code = sent_input(h.last_code(ADDR), input);
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &code)
                    .await?;
            assert_eq!(v.method(), Some(Method::Email));
        }
        Flow::SmsLogin => {
            let ch = begin(h).await?;
            assert!(ch.text_sent());
            let code = sent_input(h.last_text_code(PHONE), input);
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &code)
                    .await?;
            assert_eq!(v.method(), Some(Method::Sms));
        }
        Flow::SmsConfirm => {
            h.tf.sms().start_setup(USER, PHONE).await?;
            let code = sent_input(h.last_text_code(PHONE), input);
            assert_eq!(
                h.tf.sms().confirm_setup(USER, &code).await?.as_e164(),
                PHONE
            );
        }
        Flow::BackupLogin => {
            let code = match input {
                Input::Right => ctx.backup[0].clone(),
                Input::Wrong => BackupCodeSet::generate(1).codes()[0].expose().to_owned(),
                Input::Replay => ctx.used.clone().unwrap(),
                Input::WrongPassword => unreachable!(),
            };
            let ch = begin(h).await?;
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &code)
                    .await?;
            assert_eq!(v.method(), Some(Method::BackupCode));
            assert_eq!(v.backup_codes_remaining(), 9);
        }
        Flow::TotpConfirm => {
            let setup = h.tf.totp().start_setup(USER, ADDR).await?;
            ctx.secret = Some(setup.secret_base32().to_owned());
            ctx.backup = setup
                .backup_codes()
                .iter()
                .map(|c| c.expose().to_owned())
                .collect();
            let code = totp_input(h, ctx, input);
            h.tf.totp().confirm_setup(USER, &code).await?;
        }
        Flow::EmailConfirm => {
            h.tf.email().start_setup(USER, ADDR).await?;
            let code = sent_input(h.last_code(ADDR), input);
            assert_eq!(h.tf.email().confirm_setup(USER, &code).await?, ADDR);
        }
        Flow::Disable => {
            let code = totp_input(h, ctx, input);
            let password = if input == Input::WrongPassword {
                "wrong password"
            } else {
                PASSWORD
            };
            h.tf.account().disable(USER, password, &code).await?;
        }
        Flow::Regenerate => {
            let code = totp_input(h, ctx, input);
            let codes = h.tf.backup_codes().regenerate(USER, &code).await?;
            assert_eq!(codes.len(), 10);
            ctx.backup = codes.iter().map(|c| c.expose().to_owned()).collect();
        }
    }
    Ok(())
}

/// A login with `code` on a new challenge.
async fn login(h: &Harness, code: &str) -> Result<twofactor::Verified, Error> {
    let ch = begin(h).await?;
    h.tf.verify_login(LoginContext::none(), ch.token(), code)
        .await
}

/// With the store healthy again: the enrolment is whole, and the flow completes on a retry.
async fn check_after(flow: Flow, input: Input, h: &Harness, ctx: &Ctx, r: &Result<(), Error>) {
    let ok = r.is_ok();
    let st = status(h).await;
    match flow {
        Flow::TotpLogin => {
            assert_status(&st, true, &[Method::Totp, Method::BackupCode], 10);
            h.advance(30);
            let code = h.totp(ctx.secret.as_deref().unwrap());
            assert_eq!(login(h, &code).await.unwrap().method(), Some(Method::Totp));
        }
        Flow::EmailLogin => {
            assert_status(&st, true, &[Method::Email], 0);
            let ch = begin(h).await.unwrap();
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_code(ADDR))
                    .await;
            assert_eq!(v.unwrap().method(), Some(Method::Email));
        }
        Flow::SmsLogin => {
            assert_status(&st, true, &[Method::Sms], 0);
            let ch = begin(h).await.unwrap();
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_text_code(PHONE))
                    .await;
            assert_eq!(v.unwrap().method(), Some(Method::Sms));
        }
        Flow::SmsConfirm => {
            if !st.enabled {
                assert!(st.methods.is_empty() && st.phone.is_none(), "{st:?}");
                if let Err(Error::Delivery(_)) = r {
                    // A text reported as failed may still have gone out: its code is void.
                    if h.texts.last_to(PHONE).is_some() {
                        let code = h.last_text_code(PHONE);
                        assert!(h.tf.sms().confirm_setup(USER, &code).await.is_err());
                    }
                }
                h.advance(61);
                h.enroll_sms(USER, PHONE).await;
            } else {
                assert_eq!(input, Input::Right, "enabled by a wrong code");
            }
            let st = status(h).await;
            assert_status(&st, true, &[Method::Sms], 0);
            let ch = begin(h).await.unwrap();
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_text_code(PHONE))
                    .await;
            assert_eq!(v.unwrap().method(), Some(Method::Sms));
        }
        Flow::BackupLogin => {
            let methods = [Method::Totp, Method::BackupCode];
            let first = &ctx.backup[0];
            // A backup code is spent by a success, by a replay's first use, or by a flow that
            // failed after consuming it; never by a wrong code.
            let spent = match input {
                Input::Right if ok => true,
                Input::Right => st.backup_codes_remaining == 9,
                Input::Replay => true,
                _ => false,
            };
            assert_status(&st, true, &methods, if spent { 9 } else { 10 });
            h.advance(30);
            if spent {
                // Single use holds whatever failed.
                assert!(matches!(
                    login(h, first).await,
                    Err(Error::InvalidCode { .. })
                ));
                let v = login(h, &ctx.backup[1]).await.unwrap();
                assert_eq!(v.backup_codes_remaining(), 8);
            } else {
                let v = login(h, first).await.unwrap();
                assert_eq!(v.backup_codes_remaining(), 9);
            }
        }
        Flow::TotpConfirm => {
            if !st.enabled {
                assert!(!ok || input != Input::Right, "confirmed but not enabled");
                // Nothing half-enabled: no method, and a login asks for nothing.
                assert!(st.methods.is_empty() && st.totp_confirmed_at.is_none());
                assert!(matches!(
                    h.tf.begin_login(LoginContext::none(), USER).await.unwrap(),
                    LoginStep::Complete(_)
                ));
                h.advance(30);
                let pending = st.totp_pending && ctx.secret.is_some();
                let secret = if pending {
                    ctx.secret.clone().unwrap()
                } else {
                    let setup = h.tf.totp().start_setup(USER, ADDR).await.unwrap();
                    setup.secret_base32().to_owned()
                };
                h.tf.totp()
                    .confirm_setup(USER, &h.totp(&secret))
                    .await
                    .unwrap();
                let st = status(h).await;
                assert_status(&st, true, &[Method::Totp, Method::BackupCode], 10);
                if pending {
                    // The backup codes installed are those shown with this secret.
                    h.advance(30);
                    let v = login(h, &ctx.backup[3]).await.unwrap();
                    assert_eq!(v.method(), Some(Method::BackupCode));
                }
                h.advance(30);
                let v = login(h, &h.totp(&secret)).await.unwrap();
                assert_eq!(v.method(), Some(Method::Totp));
            } else {
                assert_eq!(input, Input::Right, "enabled by a wrong code");
                assert_status(&st, true, &[Method::Totp, Method::BackupCode], 10);
                assert!(st.totp_confirmed_at.is_some() && !st.totp_pending);
                let secret = ctx.secret.as_deref().unwrap();
                h.advance(30);
                let v = login(h, &ctx.backup[3]).await.unwrap();
                assert_eq!(v.method(), Some(Method::BackupCode));
                h.advance(30);
                let v = login(h, &h.totp(secret)).await.unwrap();
                assert_eq!(v.method(), Some(Method::Totp));
            }
        }
        Flow::EmailConfirm => {
            if !st.enabled {
                assert!(st.methods.is_empty() && st.email.is_none(), "{st:?}");
                if let Err(Error::Delivery(_)) = r {
                    // A message reported as failed may still have gone out: its code is void.
                    if let Some(m) = h.mailer.last_to(ADDR) {
                        let code = support::code_in(&m.text).unwrap();
                        assert!(h.tf.email().confirm_setup(USER, &code).await.is_err());
                    }
                }
                h.advance(61);
                h.tf.email().start_setup(USER, ADDR).await.unwrap();
                let code = h.last_code(ADDR);
                h.tf.email().confirm_setup(USER, &code).await.unwrap();
            } else {
                assert_eq!(input, Input::Right, "enabled by a wrong code");
            }
            let st = status(h).await;
            assert_status(&st, true, &[Method::Email], 0);
            assert_eq!(st.email.as_deref(), Some(ADDR));
            let ch = begin(h).await.unwrap();
            let v =
                h.tf.verify_login(LoginContext::none(), ch.token(), &h.last_code(ADDR))
                    .await;
            assert_eq!(v.unwrap().method(), Some(Method::Email));
        }
        Flow::Disable => {
            let all = [Method::Totp, Method::Email, Method::BackupCode];
            if st.enabled {
                assert!(!ok, "disable succeeded but the user is still enrolled");
                assert_status(&st, true, &all, 10);
                assert!(st.totp_confirmed_at.is_some() && st.email.is_some());
                h.advance(30);
                let code = h.totp(ctx.secret.as_deref().unwrap());
                h.tf.account().disable(USER, PASSWORD, &code).await.unwrap();
            } else {
                // Removed as a whole (a lost answer after the removal is the only way to get
                // here with an error).
                assert_eq!(input, Input::Right, "disabled without the right code");
            }
            let st = status(h).await;
            assert_status(&st, false, &[], 0);
            assert!(st.totp_confirmed_at.is_none() && st.email.is_none());
            assert!(matches!(
                h.tf.begin_login(LoginContext::none(), USER).await.unwrap(),
                LoginStep::Complete(_)
            ));
        }
        Flow::Regenerate => {
            assert_status(&st, true, &[Method::Totp, Method::BackupCode], 10);
            let secret = ctx.secret.as_deref().unwrap();
            h.advance(30);
            if ok {
                // ctx.backup holds the new set: it works.
                let v = login(h, &ctx.backup[0]).await.unwrap();
                assert_eq!(v.backup_codes_remaining(), 9);
            } else {
                // The old set is intact, or (a lost answer after the replacement) a whole new
                // set replaced it; then no old code works.
                let old = login(h, &ctx.backup[0]).await;
                if old.is_err() {
                    assert_eq!(input, Input::Right, "a wrong code replaced the set");
                    assert!(login(h, &ctx.backup[9]).await.is_err());
                }
                h.advance(30);
                let new =
                    h.tf.backup_codes()
                        .regenerate(USER, &h.totp(secret))
                        .await
                        .unwrap();
                for c in [&ctx.backup[1], &ctx.backup[5], &ctx.backup[9]] {
                    assert!(login(h, c).await.is_err(), "an old code survived");
                }
                let v = login(h, new[0].expose()).await.unwrap();
                assert_eq!(v.method(), Some(Method::BackupCode));
            }
        }
    }
}

/// Every kind of fault at every call of `flow`; returns how many faulty runs were checked.
async fn sweep(flow: Flow, input: Input) -> usize {
    // A run without faults: the natural outcome and the number of calls.
    let (h, f) = faults::harness(Policy::default());
    let mut ctx = setup(flow, input, &h).await;
    f.arm(Mode::Off, true);
    let natural = run(flow, input, &h, &mut ctx).await;
    let n = f.calls();
    let trace = f.trace();
    match (&natural, input) {
        (Ok(()), Input::Right) => {}
        (Err(e), i) if i != Input::Right => assert!(e.http_status() < 500, "{e:?}"),
        _ => panic!("{flow:?} {input:?} without faults gave {natural:?}"),
    }
    let natural_code = natural.as_ref().err().map(Error::code);
    check_after(flow, input, &h, &ctx, &natural).await;

    let mut runs = 0;
    for k in 1..=n {
        let transient = k % 2 == 1;
        for mode in [
            Mode::Once {
                at: k,
                after: false,
            },
            Mode::Once { at: k, after: true },
            Mode::From { at: k },
        ] {
            let (h, f) = faults::harness(Policy::default());
            let mut ctx = setup(flow, input, &h).await;
            f.arm(mode, transient);
            let r = run(flow, input, &h, &mut ctx).await;
            f.disarm();
            let injected = f.injected();
            let what = format!(
                "{flow:?} {input:?} {mode:?} transient={transient}: call {} of {trace:?}: {r:?}",
                k
            );
            assert!(!injected.is_empty(), "{what}: the call did not happen");
            check_error(&f, &injected, &r, natural_code, input, &what);
            check_after(flow, input, &h, &ctx, &r).await;
            runs += 1;
        }
    }
    eprintln!("{flow:?} {input:?}: {n} calls, {runs} faulty runs checked");
    runs
}

/// A failed flow names the failure: `Store` for a store call, `Delivery` for the mailer, with the
/// wrapper's `is_transient`; or, when the failure was one the flow may ignore, its natural result.
fn check_error(
    f: &Faults,
    injected: &[(u64, &'static str)],
    r: &Result<(), Error>,
    natural: Option<&'static str>,
    input: Input,
    what: &str,
) {
    if input != Input::Right {
        assert!(r.is_err(), "{what}: a wrongful success");
    }
    let Err(e) = r else { return };
    let send = |name: &str| name == "mail.send" || name == "text.send";
    let mail = injected.iter().any(|(_, name)| send(name));
    let store = injected.iter().any(|(_, name)| !send(name));
    match e {
        Error::Store(_) => assert!(store, "{what}: a store error without a store failure"),
        Error::Delivery(_) => assert!(mail, "{what}: a delivery error without a mail failure"),
        other => {
            assert_eq!(
                Some(other.code()),
                natural,
                "{what}: neither a typed store/delivery error nor the natural outcome"
            );
            return;
        }
    }
    assert_eq!(e.is_transient(), f.transient(), "{what}");
    assert_eq!(e.http_status(), 503, "{what}");
}

macro_rules! sweep_test {
    ($name:ident, $flow:expr, $input:expr) => {
        #[tokio::test]
        async fn $name() {
            assert!(sweep($flow, $input).await > 0);
        }
    };
}

sweep_test!(totp_login, Flow::TotpLogin, Input::Right);
sweep_test!(totp_login_wrong_code, Flow::TotpLogin, Input::Wrong);
sweep_test!(totp_login_replay, Flow::TotpLogin, Input::Replay);
sweep_test!(email_login, Flow::EmailLogin, Input::Right);
sweep_test!(email_login_wrong_code, Flow::EmailLogin, Input::Wrong);
sweep_test!(backup_login, Flow::BackupLogin, Input::Right);
sweep_test!(backup_login_wrong_code, Flow::BackupLogin, Input::Wrong);
sweep_test!(backup_login_replay, Flow::BackupLogin, Input::Replay);
sweep_test!(totp_confirm, Flow::TotpConfirm, Input::Right);
sweep_test!(totp_confirm_wrong_code, Flow::TotpConfirm, Input::Wrong);
sweep_test!(email_confirm, Flow::EmailConfirm, Input::Right);
sweep_test!(email_confirm_wrong_code, Flow::EmailConfirm, Input::Wrong);
sweep_test!(sms_login, Flow::SmsLogin, Input::Right);
sweep_test!(sms_login_wrong_code, Flow::SmsLogin, Input::Wrong);
sweep_test!(sms_confirm, Flow::SmsConfirm, Input::Right);
sweep_test!(sms_confirm_wrong_code, Flow::SmsConfirm, Input::Wrong);
sweep_test!(disable, Flow::Disable, Input::Right);
sweep_test!(disable_wrong_code, Flow::Disable, Input::Wrong);
sweep_test!(disable_wrong_password, Flow::Disable, Input::WrongPassword);
sweep_test!(regenerate, Flow::Regenerate, Input::Right);
sweep_test!(regenerate_wrong_code, Flow::Regenerate, Input::Wrong);
