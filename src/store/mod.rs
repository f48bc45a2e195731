//! Storage: the [`OtpStore`] for short-lived state and the [`EnrollmentStore`] for durable factors.
//!
//! Both traits are small, async and object safe; every primitive is required, so no default can
//! quietly weaken single use or atomicity. The composite operations shaped like a login step
//! (see [`flow`]) have defaults built from the primitives, which fast stores override. Stores never read a clock: each call that decides
//! expiry receives `now`, and each write receives the record's absolute `expires_at`. A backend's
//! own TTL (Redis `PEXPIREAT`, a purge job in SQL) is only garbage collection.
//!
//! The crate ships [`MemoryOtpStore`] and [`MemoryEnrollmentStore`]; other backends live behind
//! cargo features. To prove a store of your own right, run the conformance suite exported under
//! the `test-util` feature.

#[cfg(feature = "test-util")]
pub mod conformance;
mod enrollment;
pub mod flow;
mod key;
mod memory;
mod otp;
mod records;
#[cfg(feature = "redis")]
mod redis;
mod shared;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;

#[cfg(feature = "redis")]
pub use self::redis::{
    RedisEnrollmentStore, RedisOtpStore, RedisOtpStoreBuilder, DEFAULT_REDIS_PREFIX,
};
pub use enrollment::EnrollmentStore;
pub use key::StoreKey;
#[cfg(feature = "fuzzing")]
pub(crate) use memory::{challenge_entry_bytes, read_challenge_entry};
pub use memory::{MemoryEnrollmentStore, MemoryOtpStore};
pub use otp::OtpStore;
pub use records::{
    BackupCodeRecord, EmailRecord, EnrollmentRecord, PendingTotp, PhoneRecord, RecoveryRecord,
    Revision, SecurityKeyRecord, TotpRecord, TrustedDeviceRecord,
};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sql::{SqlPool, SqlStore, SqlStoreBuilder};
