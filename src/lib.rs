#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod backup;
mod challenge;
mod clock;
mod code;
mod codec;
mod email_code;
mod error;
mod events;
mod keys;
mod lockout;
mod login;
mod mail;
mod method;
mod password;
mod policy;
mod service;
mod step_up;
mod store;
mod totp;

pub use backup::BackupCodeSet;
pub use challenge::{Challenge, ChallengeToken};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{spaced, Secret};
pub use error::{BoxError, DeliveryError, Error, StoreError, StoreErrorKind};
pub use events::{Event, EventSink, RecordingEvents, TracingEvents};
pub use keys::Keyring;
pub use login::LoginStep;
pub use mail::{
    escape_html, EnglishTemplates, LogMailer, MailContext, MailKind, Mailer, Message, MessageKind,
    RecordingMailer, Rendered, SecurityAction, Templates,
};
pub use mail::{GermanTemplates, StandardMessage};
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use mail::{SmtpMailer, SmtpMailerBuilder, SmtpTls};
pub use method::{Method, Verified};
pub use password::{hash_password, verify_password};
pub use policy::{BackupCodeHashing, Policy, TotpAlgorithm, MAX_CODE_TTL, MAX_FAILURES_PER_DAY};
pub use service::{PasswordVerifier, ServiceBuilder, TwoFactorService};
pub use step_up::Status;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use store::conformance;
pub use store::flow;
pub use store::{
    BackupCodeRecord, EmailRecord, EnrollmentRecord, EnrollmentStore, MemoryEnrollmentStore,
    MemoryOtpStore, OtpStore, PendingTotp, Revision, StoreKey, TotpRecord,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisOtpStore, RedisOtpStoreBuilder, DEFAULT_REDIS_PREFIX};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use store::{SqlStore, SqlStoreBuilder};
pub use totp::{
    otpauth_uri, qr_png, qr_svg, totp_code, OtpAuthUri, TotpParams, TotpSecret, TotpSetup,
    TotpVerifier,
};
