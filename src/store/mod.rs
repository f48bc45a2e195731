//! Storage: the [`OtpStore`] for short-lived state and the [`EnrollmentStore`] for durable factors.
//!
//! Both traits are small, async and object safe; every primitive is required, so no default can
//! quietly weaken single use or atomicity. The composite operations shaped like a login step
//! (see [`flow`]) have defaults built from the primitives, which fast stores override. Stores
//! never read a clock: each call that decides expiry receives `now`, and each write receives the
//! record's absolute `expires_at`. A backend's own TTL (Redis `PEXPIREAT`, a purge job in SQL) is
//! only garbage collection.
//!
//! The crate ships [`MemoryOtpStore`] and [`MemoryEnrollmentStore`]; other backends live behind
//! cargo features. To prove a store of your own right, run the conformance suite exported under
//! the `test-util` feature.
//!
//! # The two stores
//!
//! | store | holds | written with |
//! | --- | --- | --- |
//! | [`OtpStore`] | pending codes, challenges, counters, lockouts, cooldowns, the last TOTP step: opaque bytes under a [`StoreKey`], each with its expiry | single-use and atomic primitives (`put_if_absent`, `take`, `increment`, `advance`), and the composite operations of [`flow`] |
//! | [`EnrollmentStore`] | one [`EnrollmentRecord`] per user (TOTP, email, phone, security keys, trusted devices, a pending recovery) and the user's [`BackupCodeRecord`]s | compare-and-swap on a [`Revision`]; a backup code is consumed by one atomic call |
//!
//! # Backends
//!
//! | backend | cargo feature | types |
//! | --- | --- | --- |
//! | process memory | none | [`MemoryOtpStore`], [`MemoryEnrollmentStore`] |
//! | Redis | `redis` | `RedisOtpStore`, `RedisEnrollmentStore` |
//! | PostgreSQL, SQLite | `postgres`, `sqlite` | `SqlStore`, both traits in one |
//!
//! The service takes each store as `impl OtpStore` and `impl EnrollmentStore`; an `Arc<S>` or a
//! `Box<dyn …>` of a store is a store too, so the host can keep a handle on one it shares.
//!
//! # Example
//!
//! A write names the revision it read, so a stale writer is refused instead of overwriting:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use twofactor::{store::EmailRecord, store::EnrollmentRecord, store::EnrollmentStore, store::MemoryEnrollmentStore, error::StoreError, clock::Timestamp};
//!
//! let store = MemoryEnrollmentStore::new();
//! let mut record = EnrollmentRecord::new();
//! record.email = Some(EmailRecord::new("alice@example.com", Timestamp::from_unix_secs(100)));
//!
//! // The first write expects no record at all.
//! let first = store.save("alice", &record, None).await?.expect("no record yet");
//! let (loaded, revision) = store.load("alice").await?.expect("just saved");
//! assert_eq!((&loaded, revision), (&record, first));
//!
//! // A second writer that also expected no record is refused, and nothing is written.
//! assert_eq!(store.save("alice", &EnrollmentRecord::new(), None).await?, None);
//! assert_eq!(store.load("alice").await?, Some((record, first)));
//! # Ok::<(), StoreError>(())
//! # }).unwrap();
//! ```
//!
//! # Writing a store
//!
//! Implement the primitives of each trait with `#[twofactor::async_trait]` on the `impl` (the
//! traits' docs show a wrapper of each); the composite operations then run on their defaults,
//! correct but with more round trips, until the store overrides them. The conformance suite
//! runs the same tests on your store, defaults and overrides alike, as on every store of this
//! crate.

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
#[cfg(any(
    feature = "test-util",
    all(test, any(feature = "redis", feature = "postgres"))
))]
mod skips;
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
