//! HTTP tests of the server example: every endpoint and every documented error, through the
//! example's own router in process (`tower::ServiceExt::oneshot`), on the memory stores (and,
//! with the `sqlite` feature, once on `SqlStore` over a SQLite file), a manual clock and a
//! recording mailer. No port is opened.
//!
//! One test binary: one module per area, sharing `support`; the application is the example's own
//! (`app/`), included by path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "../../app/mod.rs"]
mod app;
mod support;

mod backup_codes;
mod email_codes;
mod enrolment;
mod login;
mod page;
mod registration;
mod security_keys;
mod sessions;
#[cfg(feature = "sqlite")]
mod sql_store;
