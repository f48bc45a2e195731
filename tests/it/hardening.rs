//! Smaller hardening points: the issuer is checked where it is configured, an enrolment record
//! of an unknown format is refused rather than read as "no factor", and one public code covers
//! every failure of the code step.

use twofactor::LoginContext;
use twofactor::{
    store::EnrollmentRecord, store::EnrollmentStore, store::MemoryEnrollmentStore,
    store::MemoryOtpStore, testing::RecordingMailer, Error, Keyring, TwoFactorService,
};

use crate::support::Harness;

#[test]
fn unusable_issuers_are_refused_at_build() {
    let build = |issuer: &str| {
        TwoFactorService::builder()
            .issuer(issuer)
            .keys(Keyring::generate())
            .otp_store(MemoryOtpStore::new())
            .enrollments(MemoryEnrollmentStore::new())
            .mailer(RecordingMailer::new())
            .build()
    };
    let long = "x".repeat(257);
    for bad in [
        "",
        "Acme\u{7}",
        "Acme\n",
        " Acme",
        "Acme ",
        "Ac:me",
        long.as_str(),
    ] {
        assert!(
            matches!(build(bad), Err(Error::InvalidConfig(_))),
            "{bad:?} accepted"
        );
    }
    // What the builder accepts, every setup accepts: the same check, the same limit.
    let edge = "y".repeat(256);
    for good in ["Acme", "Acme Co", edge.as_str()] {
        let tf = build(good).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(tf.totp().start_setup("u", "u@example.com"))
            .unwrap();
    }
}

#[tokio::test]
async fn an_enrolment_record_of_an_unknown_version_is_refused_not_read_as_off() {
    let h = Harness::new();
    h.enroll_totp("u1").await;
    let (mut rec, rev) = h.enrollments.load("u1").await.unwrap().unwrap();
    rec.version = EnrollmentRecord::VERSION + 1;
    h.enrollments.save("u1", &rec, Some(rev)).await.unwrap();
    for result in [
        h.tf.begin_login(LoginContext::none(), "u1")
            .await
            .map(|_| ()),
        h.tf.account().status("u1").await.map(|_| ()),
        h.tf.email().start_setup("u1", "u1@example.com").await,
    ] {
        match result {
            Err(Error::Store(e)) => assert_eq!(e.kind(), twofactor::error::StoreErrorKind::Corrupt),
            other => panic!("expected a corrupt record, got {other:?}"),
        }
    }
}

#[test]
fn one_public_code_for_every_failure_of_the_code_step() {
    let step = [
        Error::InvalidCode {
            attempts_remaining: Some(1),
        },
        Error::MalformedCode,
        Error::Expired,
        Error::InvalidChallenge,
        Error::CodeReused,
        Error::NothingPending,
    ];
    for e in &step {
        assert_eq!(e.public_code(), "invalid_code", "{e:?}");
        assert_eq!(e.public_message(), step[0].public_message());
    }
    for e in [
        Error::TooManyAttempts,
        Error::InvalidPassword,
        Error::Internal("argon2 hashing failed"),
    ] {
        assert_eq!(e.public_code(), e.code());
    }
}
