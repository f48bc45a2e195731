//! A security key's login answer through `TwoFactorService::verify_login` on the memory stores,
//! against its floor measured in the same run: `webauthn-rs` checking the same kind of
//! assertion against a ceremony state with nothing around it (parse, origin, challenge, ECDSA
//! P-256 signature). The ratio shows what the service adds: the attempt counted before the
//! check, the state decoded from the challenge record, the counter compared and saved in the
//! enrolment record, and the challenge taken.
//!
//! Each iteration gets a fresh challenge and a fresh assertion from a software authenticator
//! (1Password's passkey-rs), made untimed; only the answer is timed.
//!
//! Run: `cargo bench --bench security_key --features webauthn -- --warm-up-time 1
//! --measurement-time 3`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "../tests/it/support/authenticator.rs"]
#[allow(dead_code, unreachable_pub)]
mod authenticator;

use std::hint::black_box;
use std::time::Duration;
use twofactor::LoginContext;

use authenticator::{SoftKey, ORIGIN, RP_ID};
use criterion::{BatchSize, Criterion};
use twofactor::{
    clock::Timestamp, security_key::SecurityKeyPolicy, store::MemoryEnrollmentStore,
    store::MemoryOtpStore, testing::ManualClock, testing::RecordingMailer, totp::TotpSecret,
    Keyring, LoginStep, Policy, TwoFactorService,
};
use webauthn_rs::prelude::{PublicKeyCredential, SecurityKey, Url, Uuid, WebauthnBuilder};

const T0: u64 = 1_700_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A service with security keys, and a user with TOTP and one key.
fn service(rt: &tokio::runtime::Runtime) -> (TwoFactorService, SoftKey) {
    let mut policy = Policy::default();
    policy.security_keys = Some(SecurityKeyPolicy::new(RP_ID, ORIGIN));
    let tf = TwoFactorService::builder()
        .issuer("Bench")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(RecordingMailer::new())
        .clock(ManualClock::new(Timestamp::from_unix_secs(T0)))
        .policy(policy)
        .build()
        .unwrap();
    let mut key = SoftKey::new();
    rt.block_on(async {
        let setup = tf.totp().start_setup("u1", "u1@example.com").await.unwrap();
        let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
        let code = twofactor::totp::totp_code(
            secret.as_bytes(),
            twofactor::totp::TotpParams::default(),
            T0,
        );
        tf.totp().confirm_setup("u1", &code).await.unwrap();
        let options = tf
            .security_keys()
            .start_registration("u1", "Bench User")
            .await
            .unwrap();
        let response = key.create(options.as_json()).await;
        tf.security_keys()
            .finish_registration("u1", &response, "key")
            .await
            .unwrap();
    });
    (tf, key)
}

fn main() {
    let rt = runtime();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    // The floor: webauthn-rs alone, on a key of its own.
    let origin = Url::parse(ORIGIN).unwrap();
    let rp = WebauthnBuilder::new(RP_ID, &origin)
        .unwrap()
        .build()
        .unwrap();
    let mut floor_key = SoftKey::new();
    let stored: SecurityKey = rt.block_on(async {
        let (ccr, state) = rp
            .start_securitykey_registration(Uuid::from_u128(7), "b", "b", None, None, None)
            .unwrap();
        let response = floor_key.create(&serde_json::to_value(&ccr).unwrap()).await;
        rp.finish_securitykey_registration(&serde_json::from_str(&response).unwrap(), &state)
            .unwrap()
    });
    c.bench_function(
        "floor: webauthn-rs finish_securitykey_authentication",
        |b| {
            b.iter_batched(
                || {
                    let (rcr, state) = rp
                        .start_securitykey_authentication(std::slice::from_ref(&stored))
                        .unwrap();
                    let assertion =
                        rt.block_on(floor_key.get(&serde_json::to_value(&rcr).unwrap()));
                    (assertion, state)
                },
                |(assertion, state)| {
                    let parsed: PublicKeyCredential = serde_json::from_str(&assertion).unwrap();
                    black_box(
                        rp.finish_securitykey_authentication(&parsed, &state)
                            .unwrap(),
                    )
                },
                BatchSize::SmallInput,
            )
        },
    );

    let (tf, mut key) = service(&rt);
    c.bench_function("verify_login with a security key (memory stores)", |b| {
        b.iter_batched(
            || {
                rt.block_on(async {
                    let LoginStep::Challenge(ch) =
                        tf.begin_login(LoginContext::none(), "u1").await.unwrap()
                    else {
                        panic!("a challenge");
                    };
                    let options = ch.security_key().unwrap().as_json().clone();
                    (ch.token().clone(), key.get(&options).await)
                })
            },
            |(token, assertion)| {
                black_box(
                    rt.block_on(tf.verify_login(LoginContext::none(), &token, &assertion))
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "begin_login of a user with a security key (memory stores)",
        |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(tf.begin_login(LoginContext::none(), "u1"))
                        .unwrap(),
                )
            })
        },
    );
    c.final_summary();
}
