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

mod clock;
mod code;
mod error;
mod keys;
mod mail;
mod policy;
mod store;
mod totp;

#[cfg(feature = "test-util")]
#[path = "store/conformance.rs"]
pub mod conformance;
#[cfg(feature = "redis")]
#[path = "store/redis.rs"]
mod redis_store;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "store/sql.rs"]
mod sql_store;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{spaced, Secret};
pub use error::{BoxError, DeliveryError, Error, StoreError, StoreErrorKind};
pub use keys::Keyring;
pub use mail::{
    escape_html, EnglishTemplates, LogMailer, MailContext, MailKind, Mailer, Message, MessageKind,
    RecordingMailer, Rendered, Templates,
};
pub use policy::{BackupCodeHashing, Policy, TotpAlgorithm, MAX_CODE_TTL};
#[cfg(feature = "redis")]
pub use redis_store::{RedisOtpStore, RedisOtpStoreBuilder, DEFAULT_REDIS_PREFIX};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sql_store::{SqlStore, SqlStoreBuilder};
pub use store::{
    BackupCodeRecord, EmailRecord, EnrollmentRecord, EnrollmentStore, MemoryEnrollmentStore,
    MemoryOtpStore, OtpStore, PendingTotp, Revision, StoreKey, TotpRecord,
};
pub use totp::{otpauth_uri, qr_png, qr_svg, totp_code, TotpParams, TotpSecret};
