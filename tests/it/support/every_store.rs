//! One test body on every store setup: [`every_store!`] and the setups it runs on.
//!
//! The setups, each compiled with its features: memory; PostgreSQL and SQLite (one `SqlStore`
//! for both stores); Redis for the one-time store with memory enrolments, with PostgreSQL
//! enrolments, and for both stores; and a Redis Cluster for the one-time store with memory
//! enrolments (feature `redis-cluster`). A server-backed setup skips (visibly, see
//! [`skip`](super::skip)) without its server's URL, or fails under `TWOFACTOR_REQUIRE_SERVERS=1`.
// A build without every store feature leaves the constructors of the stores it lacks unused.
#![cfg_attr(
    not(all(
        feature = "test-util",
        feature = "redis-cluster",
        feature = "postgres",
        feature = "sqlite"
    )),
    allow(dead_code)
)]

use std::sync::Arc;

use twofactor::store::{EnrollmentStore, MemoryEnrollmentStore, MemoryOtpStore, OtpStore};

#[allow(unused_imports)]
use super::stores;

/// The two stores a service runs on.
pub(crate) type Stores = (Arc<dyn OtpStore>, Arc<dyn EnrollmentStore>);

/// Memory for both stores.
pub(crate) async fn memory() -> Option<Stores> {
    Some((
        Arc::new(MemoryOtpStore::new()),
        Arc::new(MemoryEnrollmentStore::new()),
    ))
}

/// One `SqlStore` on the test PostgreSQL for both stores.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> Option<Stores> {
    let sql = Arc::new(stores::postgres_store().await?);
    Some((sql.clone(), sql))
}

/// One `SqlStore` on a SQLite file for both stores.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite() -> Option<Stores> {
    let sql = Arc::new(stores::sqlite_store().await?);
    Some((sql.clone(), sql))
}

/// Redis for the one-time store, memory enrolments.
#[cfg(feature = "redis")]
pub(crate) async fn redis_with_memory_enrolments() -> Option<Stores> {
    let otp = stores::redis_store().await?;
    Some((Arc::new(otp), Arc::new(MemoryEnrollmentStore::new())))
}

/// Redis for the one-time store, PostgreSQL enrolments.
#[cfg(all(feature = "redis", feature = "postgres"))]
pub(crate) async fn redis_with_postgres_enrolments() -> Option<Stores> {
    let otp = stores::redis_store().await?;
    let sql = stores::postgres_store().await?;
    Some((Arc::new(otp), Arc::new(sql)))
}

/// Redis for both stores, on one connection and one prefix.
#[cfg(feature = "redis")]
pub(crate) async fn redis_for_both() -> Option<Stores> {
    let otp = stores::redis_store().await?;
    let enrollments = otp.enrollment_store();
    Some((Arc::new(otp), Arc::new(enrollments)))
}

/// A Redis Cluster for the one-time store, memory enrolments.
#[cfg(feature = "redis-cluster")]
pub(crate) async fn redis_cluster_with_memory_enrolments() -> Option<Stores> {
    let otp = stores::redis_cluster_store().await?;
    Some((Arc::new(otp), Arc::new(MemoryEnrollmentStore::new())))
}

/// Runs `body` on the stores `make` gives, through the conformance runner (a runtime of its
/// own; a visible skip when `make` gives `None`).
#[cfg(feature = "test-util")]
pub(crate) fn run<MF, TF>(
    name: &str,
    make: impl FnOnce() -> MF,
    body: impl FnOnce(Arc<Stores>) -> TF,
) where
    MF: std::future::Future<Output = Option<Stores>>,
    TF: std::future::Future<Output = ()>,
{
    twofactor::store::conformance::run(name, make, body);
}

/// `every_store!(name => body)` (or `every_store!(body)` for a body named as the tests' module):
/// a module `name` with one `#[test]` per store setup (see the module docs), each running
/// `body(&Stores)`, an `async fn(&Stores)` in scope where the macro is called.
macro_rules! every_store {
    ($body:ident) => {
        $crate::support::every_store!($body => $body);
    };
    ($name:ident => $body:path) => {
        // The conformance runner comes with the `test-util` feature.
        #[cfg(feature = "test-util")]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::support::every_store!(@setup $body, memory, all());
            $crate::support::every_store!(@setup $body, postgres, feature = "postgres");
            $crate::support::every_store!(@setup $body, sqlite, feature = "sqlite");
            $crate::support::every_store!(@setup $body, redis_with_memory_enrolments,
                feature = "redis");
            $crate::support::every_store!(@setup $body, redis_with_postgres_enrolments,
                all(feature = "redis", feature = "postgres"));
            $crate::support::every_store!(@setup $body, redis_for_both, feature = "redis");
            $crate::support::every_store!(@setup $body, redis_cluster_with_memory_enrolments,
                feature = "redis-cluster");
        }
    };
    (@setup $body:path, $setup:ident, $($cfg:tt)+) => {
        #[cfg($($cfg)+)]
        #[test]
        fn $setup() {
            $crate::support::every_store::run(
                concat!(module_path!(), "::", stringify!($setup)),
                $crate::support::every_store::$setup,
                |stores| async move { $body(&stores).await },
            );
        }
    };
}
pub(crate) use every_store;
