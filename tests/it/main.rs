//! The integration tests, as one test binary: one module per area, sharing `support`.
//!
//! One binary links the crate and the dev-dependencies once instead of once per file. A module
//! that needs a feature is compiled only with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod backup_codes;
mod ci_scripts;
mod concurrency;
mod delivery_failure;
mod disable;
mod email_flows;
mod errors;
mod events;
mod faults;
mod fresh_factor;
mod hardening;
mod incidents;
mod keys;
mod login;
mod no_panic;
mod packaging;
mod policy_bounds;
mod published_figures;
mod quickstart;
#[cfg(all(feature = "test-util", any(feature = "redis", feature = "postgres")))]
mod real_failures;
mod recovery;
mod recovery_seams;
mod rfc_vectors;
mod seams_epoch;
mod seams_low;
#[cfg(feature = "webauthn")]
mod security_key;
#[cfg(all(feature = "webauthn", feature = "test-util"))]
mod security_key_stores;
mod skips;
mod sms;
#[cfg(feature = "smtp")]
mod smtp;
#[cfg(all(feature = "test-util", feature = "redis-cluster"))]
mod store_cluster;
#[cfg(feature = "test-util")]
mod store_conformance;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
mod store_faults;
#[cfg(feature = "test-util")]
mod store_flows;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
mod store_pools;
#[cfg(feature = "test-util")]
mod store_round_trips;
mod store_secrecy;
mod totp;
mod totp_algorithm_check;
mod totp_enrollment;
mod trusted_devices;
mod uniformity;
mod wire;
