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
mod devices;
mod email_code;
mod error;
mod events;
mod keys;
mod lockout;
mod login;
mod mail;
mod method;
mod password;
mod phone;
mod policy;
pub mod rate_limit;
mod recovery;
#[cfg(feature = "webauthn")]
mod security_key;
mod service;
mod step_up;
mod store;
mod text;
mod totp;

pub mod manual;

/// The attribute every `impl` of this crate's async traits needs ([`OtpStore`],
/// [`EnrollmentStore`], [`Mailer`], [`PasswordVerifier`]): `#[twofactor::async_trait]`. Re-exported
/// so that a host needs no dependency of its own, and cannot pick a mismatched version.
pub use async_trait::async_trait;
pub use backup::BackupCodeSet;
pub use challenge::{Challenge, ChallengeToken};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{spaced, Secret};
pub use devices::{DeviceToken, DeviceTrust, TrustedDevice, MAX_DEVICE_LABEL};
pub use error::{BoxError, DeliveryError, Error, StoreError, StoreErrorKind};
pub use events::{Event, EventSink, RecordingEvents, TracingEvents};
pub use keys::Keyring;
pub use login::LoginStep;
pub use mail::{
    escape_html, EnglishTemplates, LogMailer, MailContent, MailContext, Mailer, Message,
    MessagePurpose, RecordingMailer, Rendered, SecurityAction, Templates,
};
pub use mail::{GermanTemplates, StandardMessage};
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use mail::{SmtpMailer, SmtpMailerBuilder, SmtpTls};
pub use method::{Method, Verified};
pub use password::{hash_password, verify_password};
pub use phone::{PhoneError, PhoneNumber, MAX_PHONE_DIGITS, MIN_PHONE_DIGITS};
pub use policy::{BackupCodeHashing, Policy, TotpAlgorithm, MAX_CODE_TTL, MAX_FAILURES_PER_DAY};
pub use rate_limit::{Decision, Limit, LoginContext, RateLimiter, WindowKind, MAX_LIMIT_WINDOW};
pub use recovery::RecoveryProgress;
#[cfg(feature = "webauthn")]
#[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
pub use security_key::{
    SecurityKeyInfo, SecurityKeyOptions, SecurityKeyPolicy, UserVerification,
    MAX_SECURITY_KEY_LABEL, MAX_SECURITY_KEY_RESPONSE,
};
pub use service::{PasswordVerifier, ServiceBuilder, TwoFactorService};
pub use step_up::Status;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use store::conformance;
pub use store::flow;
pub use store::{
    BackupCodeRecord, EmailRecord, EnrollmentRecord, EnrollmentStore, MemoryEnrollmentStore,
    MemoryOtpStore, OtpStore, PendingTotp, PhoneRecord, RecoveryRecord, Revision,
    SecurityKeyRecord, StoreKey, TotpRecord, TrustedDeviceRecord,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisEnrollmentStore, RedisOtpStore, RedisOtpStoreBuilder, DEFAULT_REDIS_PREFIX};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use store::{SqlPool, SqlStore, SqlStoreBuilder};
pub use text::{
    EnglishTextTemplates, GermanTextTemplates, LogTextSender, RecordingTextSender, TextContent,
    TextMessage, TextSender, TextTemplates,
};
#[cfg(feature = "qr-png")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
pub use totp::qr_png;
pub use totp::{
    otpauth_uri, qr_svg, totp_code, OtpAuthUri, TotpParams, TotpSecret, TotpSetup,
    TotpSetupResponse, TotpVerifier,
};

/// Entry points for the fuzz targets in `fuzz/`: thin wrappers around crate-internal functions.
/// Enabled by the `fuzzing` feature; not a public API, and it may change at any time.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use crate::challenge::{ChallengeRecord, CodeRecord, TAG_BYTES};
    use crate::flow::{ChallengeState, UserState};
    use crate::{ChallengeToken, Error, Keyring, Secret, StoreError, Timestamp};

    /// `code::normalize`: what a user typed, normalised.
    pub fn normalize(input: &str) -> Result<Secret, Error> {
        crate::code::normalize(input)
    }

    /// `code::is_numeric`: whether normalised input is a code of `digits` digits.
    pub fn is_numeric(code: &Secret, digits: u32) -> bool {
        crate::code::is_numeric(code, digits)
    }

    /// `backup::canonical`: the canonical form of a backup code, if the input is one.
    pub fn backup_canonical(input: &str) -> Option<Secret> {
        crate::backup::canonical(input)
    }

    /// `ChallengeToken::generate`: a fresh token carrying `tag`.
    pub fn challenge_token(tag: &[u8; TAG_BYTES]) -> ChallengeToken {
        ChallengeToken::generate(tag)
    }

    /// `ChallengeToken::locate`: the user's key tag and the challenge id of a token.
    pub fn challenge_locate(
        token: &ChallengeToken,
        keys: &Keyring,
    ) -> Option<([u8; TAG_BYTES], [u8; 16])> {
        token.locate(keys)
    }

    /// `Keyring::seal`: seals `secret` for `user` under the current key.
    pub fn seal(keys: &Keyring, user: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
        keys.seal(user, secret)
    }

    /// `Keyring::open`: the secret in an envelope, and whether an older key sealed it.
    pub fn open(keys: &Keyring, user: &str, envelope: &[u8]) -> Result<(Vec<u8>, bool), Error> {
        keys.open(user, envelope)
            .map(|(secret, old)| (secret.to_vec(), old))
    }

    /// The bits of a challenge record's methods byte that survive a decode.
    pub const CHALLENGE_KNOWN_BITS: u8 = crate::challenge::KNOWN_BITS;

    /// `ChallengeRecord::decode`, then `encode` of what it read.
    pub fn challenge_record(bytes: &[u8]) -> Result<Vec<u8>, Error> {
        ChallengeRecord::decode(bytes).map(|r| r.encode())
    }

    /// `CodeRecord::decode`, then `encode` of what it read.
    pub fn code_record(bytes: &[u8]) -> Result<Vec<u8>, Error> {
        CodeRecord::decode(bytes).map(|r| r.encode())
    }

    /// The memory store's challenge entry, read back from its bytes.
    pub fn memory_challenge_entry(
        bytes: &[u8],
        expires_at: Timestamp,
    ) -> Result<ChallengeState, StoreError> {
        crate::store::read_challenge_entry(bytes, expires_at)
    }

    /// The bytes of the memory store's challenge entry for `ch`.
    pub fn memory_challenge_entry_bytes(ch: &ChallengeState) -> Vec<u8> {
        crate::store::challenge_entry_bytes(ch)
    }

    /// The user record of the default layout (built from the primitives): the state and the id
    /// of the current run of failures.
    pub fn default_user_record(bytes: &[u8]) -> Result<(UserState, u64), StoreError> {
        crate::flow::decode_default_user(bytes)
    }
}
