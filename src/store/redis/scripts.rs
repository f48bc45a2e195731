//! The Lua scripts: the three primitives that need one, and the composite operations, one script
//! each, which all start with one prelude. Also the clamp of the numbers passed to them.
//!
//! Each script is a file in `lua/`, whose header comment gives its `KEYS`, `ARGV` and reply.

use std::time::Duration;

use ::redis::Script;

use crate::clock::Timestamp;

/// `put_if_absent` (`lua/put_if_absent.lua`).
pub(super) const PUT_IF_ABSENT: &str = include_str!("lua/put_if_absent.lua");

/// `increment` (`lua/increment.lua`).
pub(super) const INCREMENT: &str = include_str!("lua/increment.lua");

/// `advance` (`lua/advance.lua`).
pub(super) const ADVANCE: &str = include_str!("lua/advance.lua");

// ---- the composite operations (see `flow`): one script each --------------------------------
//
// Every script starts with the prelude (`lua/prelude.lua`). The layout and the number rules are
// in the module docs; the rules themselves are those of `flow::rules`, named beside each step.

/// The largest integer a Lua number (a double) holds exactly, 2^53 - 1: every number passed to a
/// script is clamped to it.
pub(super) const LUA_MAX: u64 = (1 << 53) - 1;

/// A composite script: the prelude (`lua/prelude.lua`: numbers, TTLs and the three records),
/// then the operation's own file.
macro_rules! composite {
    ($file:literal) => {
        concat!(include_str!("lua/prelude.lua"), include_str!($file))
    };
}

/// `begin_challenge` (`lua/begin_challenge.lua`, after the prelude).
pub(super) const BEGIN_CHALLENGE: &str = composite!("lua/begin_challenge.lua");

/// `reserve_send` (`lua/reserve_send.lua`, after the prelude).
pub(super) const RESERVE_SEND: &str = composite!("lua/reserve_send.lua");

/// `store_code` (`lua/store_code.lua`, after the prelude).
pub(super) const STORE_CODE: &str = composite!("lua/store_code.lua");

/// `open_attempt` (`lua/open_attempt.lua`, after the prelude).
pub(super) const OPEN_ATTEMPT: &str = composite!("lua/open_attempt.lua");

/// `settle` (`lua/settle.lua`, after the prelude).
pub(super) const SETTLE: &str = composite!("lua/settle.lua");

/// `user_state` (`lua/user_state.lua`, after the prelude).
pub(super) const USER_STATE: &str = composite!("lua/user_state.lua");

/// `end_challenges` (`lua/end_challenges.lua`, after the prelude).
pub(super) const END_CHALLENGES: &str = composite!("lua/end_challenges.lua");

/// The prelude alone, for the tests of the scripts.
#[cfg(test)]
pub(super) const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The scripts of a [`RedisOtpStore`](super::RedisOtpStore), prepared once (their SHA1 digests
/// computed) and shared by its clones.
pub(super) struct Scripts {
    pub(super) put_if_absent: Script,
    pub(super) increment: Script,
    pub(super) advance: Script,
    pub(super) begin_challenge: Script,
    pub(super) reserve_send: Script,
    pub(super) store_code: Script,
    pub(super) open_attempt: Script,
    pub(super) settle: Script,
    pub(super) user_state: Script,
    pub(super) end_challenges: Script,
}

impl Scripts {
    /// Prepares every script (computes its SHA1 digest, which `EVALSHA` names it by).
    pub(super) fn new() -> Self {
        Scripts {
            put_if_absent: Script::new(PUT_IF_ABSENT),
            increment: Script::new(INCREMENT),
            advance: Script::new(ADVANCE),
            begin_challenge: Script::new(BEGIN_CHALLENGE),
            reserve_send: Script::new(RESERVE_SEND),
            store_code: Script::new(STORE_CODE),
            open_attempt: Script::new(OPEN_ATTEMPT),
            settle: Script::new(SETTLE),
            user_state: Script::new(USER_STATE),
            end_challenges: Script::new(END_CHALLENGES),
        }
    }
}

/// A number for a script, clamped at 2^53 - 1 so that a Lua number holds it exactly.
pub(super) fn lua_num(n: u64) -> u64 {
    n.min(LUA_MAX)
}

/// A time for a script, in seconds, clamped like [`lua_num`].
pub(super) fn lua_time(t: Timestamp) -> u64 {
    lua_num(t.as_unix_secs())
}

/// A duration for a script, in whole seconds (as [`Timestamp::saturating_add`] counts it),
/// clamped like [`lua_num`].
pub(super) fn lua_secs(d: Duration) -> u64 {
    lua_num(d.as_secs())
}
