//! The manual: how to run the crate in a host, one page per topic.
//!
//! The crate root has the quickstart and the feature table; these pages hold the rest. This
//! module is documentation only: it defines no items.
//!
//! - [`flows`]: every flow (enrolment, login, disable, backup codes, trusted devices, recovery,
//!   security keys, status, key rotation), the errors a handler answers with, the wire format.
//! - [`rate_limits`]: limits on what the crate does not see (the password step, forms, routes),
//!   kept in the same store.
//! - [`stores`]: the memory, SQL and Redis stores, Redis persistence, a Redis Cluster, failures
//!   and retries, writing your own store, round trips per step.
//! - [`security_model`]: codes, attempts, single use, secrets and tokens in short.
//! - [`defaults`]: the default figures of the policy.
//! - [`smtp`]: email delivery over SMTP: configuration, TLS, failures, templates, deliverability.
//! - [`performance`]: benchmarks beside their floors, and the soak.
//! - [`server`]: the server example: its page, endpoints, sessions, limits, a login with curl.
//!
//! The threat model, the stored forms, the limits and the invariants and checklist items
//! (`INV-*`, `CHK-*`) with the tests that prove them are in
//! [SECURITY.md](https://github.com/twofactor-rs/twofactor/blob/main/SECURITY.md).
//!
//! # How the crate is laid out
//!
//! Three layers:
//!
//! - **Values and rules** at the bottom: codes, secrets, tokens, keys, the clock, the policy and
//!   its figures, the errors. They are plain types and functions that decide (is this code right,
//!   is this record live at `now`, how long does this lock last) without any I/O.
//! - **Flows** above: the service runs each flow (enrolment, login, step-up, disable, recovery) as
//!   a short sequence of those rules and calls to what it is given from outside: a short-lived
//!   store, an enrolment store, a mailer, a text sender, a password verifier, an event sink, a
//!   clock. Each of those is a trait; the flows know nothing about HTTP, sessions or the host's
//!   users table.
//! - **Adapters** behind features: the Redis and SQL stores, the SMTP mailer and security keys
//!   implement those traits or plug into the flows, each compiled only with its feature. The memory
//!   stores and the recording and logging mailers are always there, for tests and demos, and the
//!   store conformance suite (feature `test-util`) holds any store, the crate's or yours, to the
//!   same rules.
//!
//! A reader looking for why a figure is what it is starts at the policy; for what happens in a
//! request, at the flow; for how state is kept, at the store that holds it.

#[doc = include_str!("flows.md")]
pub mod flows {}

#[doc = include_str!("rate_limits.md")]
pub mod rate_limits {}

#[doc = include_str!("stores.md")]
pub mod stores {}

#[doc = include_str!("security_model.md")]
pub mod security_model {}

#[doc = include_str!("defaults.md")]
pub mod defaults {}

#[doc = include_str!("smtp.md")]
pub mod smtp {}

#[doc = include_str!("performance.md")]
pub mod performance {}

#[doc = include_str!("server.md")]
pub mod server {}
