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

pub mod account;
mod backup;
mod challenge;
pub mod clock;
mod code;
mod codec;
mod devices;
mod email_code;
pub mod error;
pub mod events;
mod input;
mod keys;
mod keyspace;
mod lockout;
mod login;
pub mod mail;
pub mod manual;
mod method;
mod password;
mod phone;
mod policy;
pub mod rate_limit;
mod recovery;
#[cfg(feature = "webauthn")]
#[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
pub mod security_key;
pub mod service;
mod sms;
mod status;
mod step_up;
pub mod store;
pub mod testing;
pub mod text;
pub mod totp;

/// The attribute every `impl` of this crate's async traits needs
/// ([`OtpStore`](store::OtpStore), [`EnrollmentStore`](store::EnrollmentStore),
/// [`Mailer`](mail::Mailer), [`PasswordVerifier`](service::PasswordVerifier)):
/// `#[twofactor::async_trait]`. Re-exported so that a host needs no dependency of its own, and
/// cannot pick a mismatched version.
pub use async_trait::async_trait;
pub use challenge::{Challenge, ChallengeToken};
pub use code::Secret;
pub use error::Error;
pub use keys::Keyring;
pub use login::LoginStep;
pub use method::{Method, Verified};
pub use policy::Policy;
pub use rate_limit::LoginContext;
pub use service::TwoFactorService;
