//! Composite [`OtpStore`](crate::store::OtpStore) operations shaped like the login flow.
//!
//! A login step needs several records at once: the challenge (or pending code) with its attempt
//! count, and the user's record with the run of failures, the lock, the last accepted TOTP step,
//! the send budget and the last verification. The composite operations read and change them
//! together, so that one step is one store call:
//!
//! | operation | what it does, atomically |
//! | --- | --- |
//! | [`OtpStore::begin_challenge`] | refuses a locked user; reserves a send (cooldown, cap); creates the challenge with its code, stamped with the user's epoch |
//! | [`OtpStore::reserve_send`] | checks the challenge (live, and of the user's epoch), the cooldown and the send cap; starts the cooldown; counts the send |
//! | [`OtpStore::store_code`] | puts a new code into a challenge or pending record, keeping its attempt count |
//! | [`OtpStore::open_attempt`] | loads the challenge and counts the attempt; refuses a locked user, then a challenge of an earlier epoch; counts the attempt against the user's run |
//! | [`OtpStore::settle`] | on a pass: refuses a challenge of an earlier epoch; takes the challenge, records the TOTP step (refusing a replay), ends the run; on a failure that reached the threshold: locks, and moves the epoch on |
//! | [`OtpStore::user_state`] | the user's record, for status |
//! | [`OtpStore::end_challenges`] | moves the user's epoch on: every challenge begun before is dead |
//!
//! # Epochs
//!
//! A challenge carries what its answer is checked against (a sealed TOTP secret, the code sent),
//! so that a login step reads no enrolment record. To keep a removed factor from working through
//! a challenge begun before the removal, the user's record holds an *epoch*
//! ([`UserState::epoch`]), and every challenge is stamped with the epoch it was begun in
//! ([`ChallengeState::epoch`]). The service calls [`OtpStore::end_challenges`] after every
//! change of the user's factors, and a lock moves the epoch on too (so guessing cannot resume on
//! a challenge from before the lock). A challenge of an earlier epoch is refused by the same
//! atomic step that would open or pass it ([`rules::in_epoch`]): an `end_challenges` that
//! returned before a `settle` began always wins. A pending code made by
//! [`OtpStore::store_code`] is not told the user, and is bound to no epoch.
//!
//! A record whose epoch is not 0 is never shortened by a write, and `begin_challenge` keeps it
//! at least as long as the challenge it stamps ([`rules::keep_for_challenge`]): a record that
//! lapsed reads as epoch 0 and could otherwise count up again to the epoch of a challenge still
//! live. Records written before epochs existed read as epoch 0, as a missing record does.
//!
//! Every operation has a default implementation built from the primitives, in the layout
//! described under [Default layout](#default-layout), so a store that implements only the
//! primitives works unchanged, with more round trips. A native implementation keeps one record
//! per challenge and one per user, and runs each operation as one round trip: the memory store
//! under its lock, Redis as one Lua script on the user's slot, SQL as one statement or one
//! transaction. The rules every implementation follows are the functions of [`rules`]; the
//! conformance suite checks them on defaults and natives alike.
//!
//! ```
//! use std::time::Duration;
//! use twofactor::clock::Timestamp;
//! use twofactor::store::flow::{rules, UserLimits, UserState};
//!
//! let limits = UserLimits::new(5, Duration::from_secs(900), Duration::from_secs(86_400));
//! let mut user = UserState::default();
//! user.failures = 3;
//! user.failures_until = Timestamp::from_unix_secs(1_000);
//! // Before the run lapses it counts; after, a store sees a clean record.
//! assert_eq!(rules::current(user, &limits, Timestamp::from_unix_secs(999)).failures, 3);
//! assert_eq!(rules::current(user, &limits, Timestamp::from_unix_secs(1_000)).failures, 0);
//! // The record's fixed binary form, as every native store keeps it.
//! assert_eq!(UserState::from_bytes(&user.to_bytes())?, user);
//! # Ok::<(), twofactor::error::StoreError>(())
//! ```
//!
//! # Default layout
//!
//! Built from the primitives, under the keys the service passes in:
//! - a challenge key `K` holds `expires_at` (8 bytes, big-endian) with its top bit set, the
//!   epoch (a presence byte, then 4 bytes, big-endian; 0 when absent) and the challenge's value;
//!   its code is under `K:code` and its attempt counter under `K:n`. A record written before
//!   epochs existed has the top bit clear and the value right after `expires_at`: it reads as
//!   epoch 0. (Times in this record stop at 2^63 - 1 seconds.)
//! - a user key `U` holds the user's record without its counters
//!   ([`UserState::to_bytes`], version 2, or version 1 written before epochs existed, then the
//!   id of the current run); the run of failures is the counter `U:f:<run>`, the last TOTP step
//!   `U:step` (an [`OtpStore::advance`] mark), the send count `U:sends`, and the epoch the
//!   counter `U:epoch` ([`OtpStore::increment`], so that concurrent ends and locks all count;
//!   the record's own copy is not read). `U:epoch` never expires: a counter that lapsed would
//!   count up again through epochs that live challenges may carry.
//!
//! [`OtpStore::begin_challenge`]: crate::store::OtpStore::begin_challenge
//! [`OtpStore::reserve_send`]: crate::store::OtpStore::reserve_send
//! [`OtpStore::store_code`]: crate::store::OtpStore::store_code
//! [`OtpStore::open_attempt`]: crate::store::OtpStore::open_attempt
//! [`OtpStore::settle`]: crate::store::OtpStore::settle
//! [`OtpStore::user_state`]: crate::store::OtpStore::user_state
//! [`OtpStore::end_challenges`]: crate::store::OtpStore::end_challenges
//! [`OtpStore::advance`]: crate::store::OtpStore::advance
//! [`OtpStore::increment`]: crate::store::OtpStore::increment

pub(crate) mod layout;
pub mod rules;
mod types;

#[cfg(feature = "fuzzing")]
pub(crate) use layout::decode_default_user;
pub use types::{
    AttemptSpec, Begun, ChallengeState, NewChallenge, OpenAttempt, Opened, Outcome, Reserved,
    SendRefused, SendSpec, Settled, Settlement, UserLimits, UserState, USER_STATE_LEN,
    USER_STATE_V1_LEN,
};
