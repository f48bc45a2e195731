//! [`RedisOtpStore`]: the short-lived state on Redis, shared by every instance of a host.
//!
//! # Layout
//!
//! The primitives keep every record as one Redis string under `<prefix><key>`. Its value is the
//! record's own `expires_at` as 20 ASCII digits, a type byte (`b` for bytes, `n` for a number) and
//! the payload (the bytes, or the number as 20 ASCII digits). Fixed-width digits compare as text
//! exactly as the numbers do, so the Lua scripts decide expiry and "greater than" without floating
//! point.
//!
//! The composite operations (see [`flow`](crate::store::flow)) keep one record per challenge and one
//! per user, under the keys the service passes in, instead of the default layout of
//! [`flow`](crate::store::flow#default-layout):
//!
//! | record | Redis type | contents |
//! | --- | --- | --- |
//! | a challenge or pending code | string | a version byte (2), `expires_at` (8 bytes), the attempts (4 bytes), whether a code is held (1 byte) and its length (4 bytes), whether it is bound to an epoch (1 byte) and the epoch (4 bytes, 0 when not), then the code and the value |
//! | the user (the `user` key itself) | string | [`UserState::to_bytes`](crate::store::flow::UserState::to_bytes) (version 2, with the epoch), then `expires_at` (8 bytes): when the record lapses, [`rules::user_expires_at`](crate::store::flow::rules::user_expires_at), never earlier than it was |
//! | a cooldown | string | the end of the cooldown, in decimal |
//!
//! Times are Unix seconds; binary integers are big-endian, read and written by the scripts with
//! Redis' `struct` library. Each record is one `GET` to read and one `SET … PX` to write (an
//! attempt rewrites only the challenge's counter, with `SETRANGE`); a hash with one field each
//! cost about three times as much server time. A user whose record is absent or
//! lapsed is [`UserState::default()`](crate::store::flow::UserState); each script applies
//! [`rules::current`](crate::store::flow::rules::current) to what it reads, so a lapsed run of
//! failures, lock level or send window is forgotten. `reserve_send`, which is given no
//! [`UserLimits`](crate::store::flow::UserLimits), leaves the lock level as stored (it lapses on the
//! next read all the same) and keeps the record until its earlier expiry or the end of the send
//! window, whichever is later. A key holds the records of one layout only: a record of the
//! other layout under it is refused as corrupt.
//!
//! A challenge of version 1 (without the two epoch fields) and a user record of version 1
//! (without the epoch), written before epochs existed, are still read, as epoch 0; a user record
//! is written back in version 2, a challenge keeps its version until it is rewritten whole.
//!
//! Records of the earlier layout, which kept the challenge and the user as hashes with one
//! decimal field each, are still read (a `GET` on them fails with `WRONGTYPE`, and the script
//! reads the hash instead), so an upgrade keeps every lock, run of failures, send budget, last
//! TOTP step and last verification; the next write of a record replaces it in the new layout.
//!
//! Lua has only one kind of number, a double, which holds integers exactly up to 2^53 - 1. The
//! store therefore clamps every time, duration (in whole seconds, as
//! [`Timestamp::saturating_add`] counts them), TOTP step and count it passes to a script at
//! 2^53 - 1, and sums in the scripts saturate there, so every comparison is exact. The only
//! visible difference from the [`rules`](crate::store::flow::rules), which saturate at `u64::MAX`: a
//! time or step past 2^53 - 1 (some 285 million years after the epoch) is kept and read back as
//! 2^53 - 1. The scripts write numbers with `string.format('%d')`, never `tostring`, which would
//! round them to 14 digits.
//!
//! Whether a record is live is decided from its stored `expires_at` (for a cooldown, its end)
//! and the `now` the service passes in, never from the Redis clock. Redis' own expiry is only
//! garbage collection: every write sets a TTL of `expires_at - now` plus a grace period, so a
//! record is never collected while it is still live for the service, even when the host's clock
//! and Redis' clock disagree.
//!
//! # Round trips
//!
//! | operation | Redis |
//! | --- | --- |
//! | `put` | `SET … PX` |
//! | `put_if_absent` | one Lua script (`GET`, then `SET … PX` when absent or expired) |
//! | `get` | `GET` |
//! | `take` | `GETDEL` |
//! | `delete` | `DEL` |
//! | `increment` | one Lua script (`GET`, `SET … KEEPTTL` or `SET … PX`) |
//! | `advance` | one Lua script (`GET`, `SET … PX` when greater, absent or expired) |
//! | `begin_challenge` | one Lua script (user, challenge and, with a send, its cooldown) |
//! | `reserve_send` | one Lua script (user, cooldown and, when named, the challenge) |
//! | `store_code` | one Lua script (the challenge or pending record) |
//! | `open_attempt` | one Lua script (user and, when named, the challenge) |
//! | `settle` | one Lua script (user and, when named, the challenge) |
//! | `user_state` | one Lua script (user) |
//! | `end_challenges` | one Lua script (user) |
//!
//! Scripts run as `EVALSHA` (the first call after Redis lost its script cache loads the script
//! once more). Each primitive's script touches only its one key; each composite operation's
//! script touches only the keys it is passed in `KEYS`, which the service puts under one `{…}`
//! hash tag (the user's: the challenge, its cooldown and the user's record), so every script
//! runs on one slot of a Redis Cluster. Requires Redis 6.2 or later (`GETDEL`,
//! `SET … KEEPTTL`).
//!
//! # Redis Cluster
//!
//! With the feature `redis-cluster`, [`RedisOtpStore::cluster_builder`] connects with the redis
//! crate's cluster client instead of a [`ConnectionManager`]: the same scripts and keys, each
//! call routed to the master of its key's slot. The client follows `MOVED` and `ASK`
//! redirections and retries (up to [`RedisOtpStoreBuilder::reconnect_attempts`]) a `TRYAGAIN`
//! during a resharding; what is left of a move after the retries is a transient [`StoreError`].
//! Nothing else differs: a call never runs on two slots, so a resharding cannot split an
//! operation.
//!
//! [`Timestamp::saturating_add`]: crate::clock::Timestamp::saturating_add
//! [`StoreError`]: crate::error::StoreError
//! [`ConnectionManager`]: ::redis::aio::ConnectionManager

#[cfg(feature = "redis-cluster")]
mod cluster;
mod connection;
mod enrollment;
mod otp;
mod record;
mod reply;
mod scripts;
#[cfg(test)]
mod tests;

pub use connection::RedisOtpStoreBuilder;
pub use enrollment::RedisEnrollmentStore;
pub use otp::RedisOtpStore;

/// The key prefix used when none is configured.
pub const DEFAULT_REDIS_PREFIX: &str = "twofactor:";
