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
//! The composite operations (see [`flow`](crate::flow)) keep one record per challenge and one
//! per user, under the keys the service passes in, instead of the default layout of
//! [`flow`](crate::flow#default-layout):
//!
//! | record | Redis type | contents |
//! | --- | --- | --- |
//! | a challenge or pending code | string | a version byte (1), `expires_at` (8 bytes), the attempts (4 bytes), whether a code is held (1 byte) and its length (4 bytes), then the code and the value |
//! | the user (the `user` key itself) | string | [`UserState::to_bytes`](crate::flow::UserState::to_bytes), then `expires_at` (8 bytes): when the record lapses, [`rules::user_expires_at`](crate::flow::rules::user_expires_at) |
//! | a cooldown | string | the end of the cooldown, in decimal |
//!
//! Times are Unix seconds; binary integers are big-endian, read and written by the scripts with
//! Redis' `struct` library. Each record is one `GET` to read and one `SET … PX` to write (an
//! attempt rewrites only the challenge's counter, with `SETRANGE`); a hash with one field each
//! cost about three times as much server time. A user whose record is absent or
//! lapsed is [`UserState::default()`](crate::flow::UserState); each script applies
//! [`rules::current`](crate::flow::rules::current) to what it reads, so a lapsed run of
//! failures, lock level or send window is forgotten. `reserve_send`, which is given no
//! [`UserLimits`](crate::flow::UserLimits), leaves the lock level as stored (it lapses on the
//! next read all the same) and keeps the record until its earlier expiry or the end of the send
//! window, whichever is later. A key holds the records of one layout only: a record of the
//! other layout under it is refused as corrupt.
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
//! visible difference from the [`rules`](crate::flow::rules), which saturate at `u64::MAX`: a
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

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script, ScriptInvocation, ServerErrorKind,
    Value,
};
use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::store::flow::{
    AttemptSpec, Begun, ChallengeState, NewChallenge, OpenAttempt, Opened, Outcome, Reserved,
    SendRefused, SendSpec, Settled, Settlement, UserLimits, UserState,
};
use crate::store::{OtpStore, StoreKey};

mod enrollment;
pub use enrollment::RedisEnrollmentStore;

/// The key prefix used when none is configured.
pub const DEFAULT_REDIS_PREFIX: &str = "twofactor:";

/// Time a record is kept by Redis after it expired for the service: covers clock differences
/// between the host instances and Redis.
const GC_GRACE_MS: u64 = 60_000;
/// The longest Redis TTL set (ten years); longer lifetimes are clamped.
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3_600 * 1_000;
/// Width of the fixed-width decimal fields.
const DIGITS: usize = 20;
const TAG_BYTES: u8 = b'b';
const TAG_NUMBER: u8 = b'n';

/// `put_if_absent`: KEYS[1]; ARGV: now, record, ttl_ms. Returns 1 when stored, 0 otherwise.
const PUT_IF_ABSENT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// `increment`: KEYS[1]; ARGV: now, expires_at, ttl_ms. Returns the new count, or -1 when the
/// live record holds bytes.
const INCREMENT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  local n = tonumber(string.sub(cur, 22))
  if n == nil then
    return -1
  end
  if n < 9007199254740991 then
    n = n + 1
  end
  redis.call('SET', KEYS[1], string.sub(cur, 1, 21) .. string.format('%020d', n), 'KEEPTTL')
  return n
end
redis.call('SET', KEYS[1], ARGV[2] .. 'n' .. string.format('%020d', 1), 'PX', ARGV[3])
return 1
";

/// `advance`: KEYS[1]; ARGV: now, record, value, ttl_ms. Returns 1 when stored, 0 when a live
/// record holds an equal or greater number, -1 when the live record holds bytes.
const ADVANCE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  if string.sub(cur, 22) >= ARGV[3] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
return 1
";

// ---- the composite operations (see `flow`): one script each --------------------------------
//
// Every script starts with the prelude below. The layout and the number rules are in the module
// docs; the rules themselves are those of `flow::rules`, named beside each step.

/// The largest integer a Lua number (a double) holds exactly, 2^53 - 1: every number passed to a
/// script is clamped to it.
const LUA_MAX: u64 = (1 << 53) - 1;

/// The start of every composite script: numbers, TTLs and the three records.
///
/// `load_user` gives the user's record live at `now` (the default record when there is none or it
/// lapsed), `load_challenge` the live challenge or `false`, `load_cooldown` the end of a live
/// cooldown or `false`; each gives `nil` and a reason for a malformed record.
macro_rules! lua_prelude {
    () => {
        r"
local MAX = 9007199254740991
local GRACE_MS = 60000
local MAX_TTL_MS = 315360000000

-- An integer in 0..=MAX, or nil.
local function int(s)
  if not s then return nil end
  local n = tonumber(s)
  if n == nil or n < 0 or n > MAX or n ~= math.floor(n) then return nil end
  return n
end

local now = int(ARGV[1])

-- a + b, saturating at MAX: both are at most MAX, so a sum past it rounds to 2^53 or more.
local function add(a, b)
  local s = a + b
  if s > MAX then return MAX end
  return s
end

-- Exact decimal text (tostring would round to 14 digits).
local function fmt(n)
  return string.format('%d', n)
end

-- The Redis TTL of a record the service keeps until exp: garbage collection only.
local function ttl(exp)
  local d = exp - now
  if d < 0 then d = 0 end
  local ms = d * 1000 + GRACE_MS
  if ms > MAX_TTL_MS then ms = MAX_TTL_MS end
  return fmt(ms)
end

-- The user's record: UserState::to_bytes (version 1, failures, failures_until, level,
-- locked_until, last_step, sends, sends_until, last_verified_at), then expires_at.
local USER_FMT = '>BI4I8I4I8BI8I4I8BI8I8'
local USER_LEN = 63

local function default_user()
  return {expires_at = 0, failures = 0, failures_until = 0, level = 0, locked_until = 0,
    last_step = false, sends = 0, sends_until = 0, last_verified_at = false}
end

-- A number read from a binary field: nil past MAX.
local function bin(n)
  if n > MAX then return nil end
  return n
end

-- An option read from a presence byte and a value: false when absent, nil when malformed.
local function opt(present, n)
  if present == 0 and n == 0 then return false end
  if present == 1 then return bin(n) end
  return nil
end

-- A user record of the earlier layout (a hash, one decimal field each), read so that an
-- upgrade keeps its lock, run, send budget, last step and last verification; the next write
-- replaces it. Its tables are built only on this path.
local function load_legacy_user(key)
  local LEGACY_USER = {'expires_at', 'failures', 'failures_until', 'level', 'locked_until',
    'last_step', 'sends', 'sends_until', 'last_verified_at'}
  local LEGACY_OPTIONAL = {last_step = true, last_verified_at = true}
  local f = redis.call('HMGET', key, unpack(LEGACY_USER))
  local u = default_user()
  if not f[1] then return nil, 'malformed user record' end
  local exp = int(f[1])
  if exp == nil then return nil, 'malformed user record' end
  if exp <= now then return u end
  u.expires_at = exp
  for i = 2, #LEGACY_USER do
    local name = LEGACY_USER[i]
    if f[i] then
      local n = int(f[i])
      if n == nil then return nil, 'malformed user record' end
      u[name] = n
    elseif not LEGACY_OPTIONAL[name] then
      return nil, 'malformed user record'
    end
  end
  return u
end

-- GET on a key of another type is an error: a hash is a record of the older layout.
local function wrong_type(reply)
  return type(reply) == 'table' and reply.err and string.find(reply.err, 'WRONGTYPE', 1, true)
end

local function load_user(key)
  local raw = redis.pcall('GET', key)
  if wrong_type(raw) then return load_legacy_user(key) end
  if type(raw) == 'table' then return nil, 'unreadable user record' end
  local u = default_user()
  if not raw then return u end
  if #raw ~= USER_LEN then return nil, 'malformed user record' end
  local v, failures, failures_until, level, locked_until, has_step, step, sends, sends_until,
    has_verified, verified, exp = struct.unpack(USER_FMT, raw)
  local last_step, last_verified_at = opt(has_step, step), opt(has_verified, verified)
  if v ~= 1 or last_step == nil or last_verified_at == nil or not bin(exp) then
    return nil, 'malformed user record'
  end
  if exp <= now then return u end
  u.expires_at, u.failures, u.failures_until, u.level, u.locked_until = exp, failures,
    bin(failures_until), level, bin(locked_until)
  u.last_step, u.sends, u.sends_until, u.last_verified_at = last_step, sends, bin(sends_until),
    last_verified_at
  if not (u.failures_until and u.locked_until and u.sends_until) then
    return nil, 'malformed user record'
  end
  return u
end

-- rules::current. Without a window (reserve_send has none) the level is left as stored: it
-- lapses on the next read all the same.
local function current(u, window)
  if u.failures_until <= now then u.failures = 0 end
  if window and u.level > 0 and add(u.locked_until, window) <= now then u.level = 0 end
  if u.sends_until <= now then u.sends = 0 end
end

-- Writes the user's record, kept until rules::user_expires_at; without limits (reserve_send)
-- until its earlier expiry or the end of the send window, whichever is later.
local function save_user(key, u, window, retention)
  local exp
  if retention then
    exp = math.max(add(now, retention), u.failures_until, add(u.locked_until, window),
      u.sends_until)
  else
    exp = math.max(u.expires_at, u.sends_until)
  end
  local step, verified = u.last_step, u.last_verified_at
  redis.call('SET', key, struct.pack(USER_FMT, 1, u.failures, u.failures_until, u.level,
    u.locked_until, step and 1 or 0, step or 0, u.sends, u.sends_until, verified and 1 or 0,
    verified or 0, exp), 'PX', ttl(exp))
end

-- A challenge or pending code: version 1, expires_at, attempts, whether it holds a code, the
-- code's length; then the code and the value.
local CHALLENGE_FMT = '>BI8I4BI4'
local CHALLENGE_HEAD = 18
-- Where the attempt count starts (0-based, for SETRANGE).
local ATTEMPTS_AT = 9

-- A challenge record of the older layout (a hash: e, v, c, n), read so that a challenge open
-- during an upgrade stays valid; the next write replaces it.
local function load_legacy_challenge(key)
  local f = redis.call('HMGET', key, 'e', 'v', 'c', 'n')
  local e, n = int(f[1]), int(f[4])
  if e == nil or n == nil or not f[2] then return nil, 'malformed challenge record' end
  if e <= now then return false end
  return {e = e, v = f[2], c = f[3], n = n, legacy = true}
end

local function load_challenge(key)
  local raw = redis.pcall('GET', key)
  if wrong_type(raw) then return load_legacy_challenge(key) end
  if type(raw) == 'table' then return nil, 'unreadable challenge record' end
  if not raw then return false end
  if #raw < CHALLENGE_HEAD then return nil, 'malformed challenge record' end
  local v, e, n, has_code, len = struct.unpack(CHALLENGE_FMT, raw)
  if v ~= 1 or has_code > 1 or (has_code == 0 and len ~= 0) or not bin(e)
    or #raw < CHALLENGE_HEAD + len then
    return nil, 'malformed challenge record'
  end
  if e <= now then return false end
  local c = false
  if has_code == 1 then c = string.sub(raw, CHALLENGE_HEAD + 1, CHALLENGE_HEAD + len) end
  return {e = e, n = n, c = c, v = string.sub(raw, CHALLENGE_HEAD + len + 1)}
end

local function save_challenge(key, ch)
  local c = ch.c or ''
  redis.call('SET', key, struct.pack(CHALLENGE_FMT, 1, ch.e, ch.n, ch.c and 1 or 0, #c) .. c
    .. ch.v, 'PX', ttl(ch.e))
end

-- Counts an attempt on a live challenge: only its counter is rewritten.
local function count_attempt(key, ch)
  ch.n = ch.n + 1
  if ch.legacy then
    save_challenge(key, ch)
  else
    redis.call('SETRANGE', key, ATTEMPTS_AT, struct.pack('>I4', ch.n))
  end
end

local function load_cooldown(key)
  local v = redis.call('GET', key)
  if not v then return false end
  local t = int(v)
  if t == nil then return nil, 'malformed cooldown record' end
  if t <= now then return false end
  return t
end

local function start_cooldown(key, t)
  redis.call('SET', key, fmt(t), 'PX', ttl(t))
end

-- rules::reserve: the refusal and its end, or nothing once the send is counted in u.
local function reserve(u, cooldown, max_sends, send_window)
  if cooldown then return 'cooldown', cooldown end
  if u.sends >= max_sends then return 'capped', u.sends_until end
  if u.sends == 0 then u.sends_until = add(now, send_window) end
  u.sends = u.sends + 1
  return nil
end
"
    };
}

/// `begin_challenge`: KEYS user, challenge[, cooldown]; ARGV now, failure_window, retention,
/// value, expires_at, send_required, code, cooldown_until, max_sends, send_window. Replies
/// `locked until`, `refused kind until`, `collision` or `created send until` (send: `none`,
/// `granted`, `cooldown` or `capped`).
const BEGIN_CHALLENGE: &str = concat!(
    lua_prelude!(),
    r"
local window, retention = int(ARGV[2]), int(ARGV[3])
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
if u.locked_until > now then return {'locked', u.locked_until} end
current(u, window)
local send, send_until = 'none', 0
if KEYS[3] then
  local cooldown, bad = load_cooldown(KEYS[3])
  if bad then return {'corrupt', bad} end
  local refused, t = reserve(u, cooldown, int(ARGV[9]), int(ARGV[10]))
  if refused then
    if ARGV[6] == '1' then return {'refused', refused, t} end
    send, send_until = refused, t
  else
    send = 'granted'
  end
end
local ch, bad = load_challenge(KEYS[2])
if bad then return {'corrupt', bad} end
if ch then return {'collision'} end
local code = false
if send == 'granted' then code = ARGV[7] end
save_challenge(KEYS[2], {e = int(ARGV[5]), v = ARGV[4], c = code, n = 0})
if send == 'granted' then
  start_cooldown(KEYS[3], int(ARGV[8]))
  save_user(KEYS[1], u, window, retention)
end
return {'created', send, send_until}
"
);

/// `reserve_send`: KEYS user, cooldown[, challenge]; ARGV now, cooldown_until, max_sends,
/// send_window. Replies `nochallenge`, `cooldown until`, `capped until` or `granted value`.
const RESERVE_SEND: &str = concat!(
    lua_prelude!(),
    r"
local value = false
if KEYS[3] then
  local ch, bad = load_challenge(KEYS[3])
  if bad then return {'corrupt', bad} end
  if not ch then return {'nochallenge'} end
  value = ch.v
end
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, nil)
local cooldown, bad = load_cooldown(KEYS[2])
if bad then return {'corrupt', bad} end
local refused, t = reserve(u, cooldown, int(ARGV[3]), int(ARGV[4]))
if refused then return {refused, t} end
start_cooldown(KEYS[2], int(ARGV[2]))
save_user(KEYS[1], u, nil, nil)
return {'granted', value}
"
);

/// `store_code`: KEYS record; ARGV now, code, create, value, expires_at. Replies `stored` or
/// `missing`.
const STORE_CODE: &str = concat!(
    lua_prelude!(),
    r"
local ch, bad = load_challenge(KEYS[1])
if bad then return {'corrupt', bad} end
if ARGV[3] == '1' then
  local n = 0
  if ch then n = ch.n end
  save_challenge(KEYS[1], {e = int(ARGV[5]), v = ARGV[4], c = ARGV[2], n = n})
  return {'stored'}
end
if not ch then return {'missing'} end
ch.c = ARGV[2]
save_challenge(KEYS[1], ch)
return {'stored'}
"
);

/// `open_attempt`: KEYS user[, challenge]; ARGV now, threshold, failure_window, retention,
/// max_attempts. Replies `nochallenge`, `exhausted`, `locked until|nil` or
/// `open attempts failures level[ value code|nil expires_at]`.
const OPEN_ATTEMPT: &str = concat!(
    lua_prelude!(),
    r"
local threshold, window, retention = int(ARGV[2]), int(ARGV[3]), int(ARGV[4])
local ch = false
if KEYS[2] then
  local bad
  ch, bad = load_challenge(KEYS[2])
  if bad then return {'corrupt', bad} end
  if not ch then return {'nochallenge'} end
  if ch.n >= int(ARGV[5]) then return {'exhausted'} end
end
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, window)
-- rules::open
if u.locked_until > now then return {'locked', u.locked_until} end
if u.failures >= threshold then return {'locked', false} end
if u.failures == 0 then u.failures_until = add(now, window) end
u.failures = u.failures + 1
save_user(KEYS[1], u, window, retention)
if not ch then return {'open', 0, u.failures, u.level} end
count_attempt(KEYS[2], ch)
return {'open', ch.n, u.failures, u.level, ch.v, ch.c, ch.e}
"
);

/// `settle`: KEYS user[, challenge]; ARGV now, failure_window, retention, then `pass` and the
/// TOTP step (empty for none), `failed`, or `lock`, until and level. Replies `done`, `gone` or
/// `replayed`.
const SETTLE: &str = concat!(
    lua_prelude!(),
    r"
local window, retention = int(ARGV[2]), int(ARGV[3])
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, window)
-- rules::settle
if KEYS[2] then
  local ch, bad = load_challenge(KEYS[2])
  if bad then return {'corrupt', bad} end
  if not ch then return {'gone'} end
end
if ARGV[4] == 'failed' then return {'done'} end
if ARGV[4] == 'pass' then
  if ARGV[5] ~= '' then
    local step = int(ARGV[5])
    if u.last_step and u.last_step >= step then return {'replayed'} end
    u.last_step = step
  end
  u.failures, u.level, u.locked_until = 0, 0, 0
  if not u.last_verified_at or u.last_verified_at < now then u.last_verified_at = now end
  save_user(KEYS[1], u, window, retention)
  if KEYS[2] then redis.call('DEL', KEYS[2]) end
  return {'done'}
end
u.failures = 0
u.level = int(ARGV[6])
u.locked_until = math.max(u.locked_until, int(ARGV[5]))
save_user(KEYS[1], u, window, retention)
return {'done'}
"
);

/// `user_state`: KEYS user; ARGV now, failure_window. Replies `user` and the fields of
/// `UserState` in order (nil for an absent option).
const USER_STATE: &str = concat!(
    lua_prelude!(),
    r"
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, int(ARGV[2]))
return {'user', u.failures, u.failures_until, u.level, u.locked_until, u.last_step, u.sends,
  u.sends_until, u.last_verified_at}
"
);

/// An [`OtpStore`] on Redis: every primitive and every composite operation atomic in one round
/// trip, shared by all instances.
///
/// Cloning is cheap and clones share one multiplexed connection, which reconnects by itself
/// after the server went away. While Redis is unreachable every call fails with a transient
/// [`StoreError`], and the service fails closed.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::Error> {
/// use twofactor::RedisOtpStore;
///
/// let store = RedisOtpStore::builder("redis://127.0.0.1:6379")
///     .prefix("acme:2fa:")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisOtpStore {
    conn: Conn,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

/// How the store reaches Redis: one server, or a cluster (feature `redis-cluster`). Both
/// multiplex their calls and reconnect by themselves; clones share the connections.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(std::sync::Arc<Cluster>),
}

/// A cluster connection that is replaced when it stops answering.
///
/// The redis crate's cluster connection (1.8) can stop answering altogether after a second
/// resharding: every call then times out, on every master, for good, while a new connection
/// works (`tests/cluster_reshard.rs`). So after [`Cluster::RENEW_AFTER`] timeouts in a row
/// (answers in between reset the count) one caller builds a new connection and the next calls
/// use it; calls already under way finish on the old one.
#[cfg(feature = "redis-cluster")]
struct Cluster {
    client: ::redis::cluster::ClusterClient,
    connect_timeout: Duration,
    current: std::sync::Mutex<::redis::cluster_async::ClusterConnection>,
    timeouts_in_a_row: std::sync::atomic::AtomicU32,
    renewing: std::sync::atomic::AtomicBool,
    /// Connections built since the first.
    renewals: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "redis-cluster")]
impl Cluster {
    const RENEW_AFTER: u32 = 8;

    fn connection(&self) -> ::redis::cluster_async::ClusterConnection {
        match self.current.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Notes how a call ended, and renews the connection after enough timeouts in a row.
    async fn after<T>(&self, result: &Result<T, RedisError>) {
        use std::sync::atomic::Ordering::SeqCst;
        match result {
            Err(e) if e.is_timeout() => {
                let n = self
                    .timeouts_in_a_row
                    .fetch_add(1, SeqCst)
                    .saturating_add(1);
                if n < Self::RENEW_AFTER || self.renewing.swap(true, SeqCst) {
                    return;
                }
                let fresh = tokio::time::timeout(
                    self.connect_timeout.saturating_mul(2),
                    self.client.get_async_connection(),
                )
                .await;
                if let Ok(Ok(fresh)) = fresh {
                    match self.current.lock() {
                        Ok(mut c) => *c = fresh,
                        Err(poisoned) => *poisoned.into_inner() = fresh,
                    }
                    self.renewals.fetch_add(1, SeqCst);
                    self.timeouts_in_a_row.store(0, SeqCst);
                    tracing::warn!(target: "twofactor", "the Redis Cluster connection stopped answering: renewed");
                }
                self.renewing.store(false, SeqCst);
            }
            Err(_) => {}
            Ok(_) => self.timeouts_in_a_row.store(0, SeqCst),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => Box::pin(async move {
                let result = h.connection().req_packed_command(cmd).await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => Box::pin(async move {
                let result = h
                    .connection()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => h.connection().get_db(),
        }
    }
}

struct Scripts {
    put_if_absent: Script,
    increment: Script,
    advance: Script,
    begin_challenge: Script,
    reserve_send: Script,
    store_code: Script,
    open_attempt: Script,
    settle: Script,
    user_state: Script,
}

impl fmt::Debug for RedisOtpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOtpStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Configures and connects a [`RedisOtpStore`]; made by [`RedisOtpStore::builder`].
pub struct RedisOtpStoreBuilder {
    url: String,
    /// The seed nodes of a cluster; empty for a single server at `url`.
    #[cfg(feature = "redis-cluster")]
    nodes: Vec<String>,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    reconnect_attempts: usize,
}

impl fmt::Debug for RedisOtpStoreBuilder {
    // The URL may hold a password: it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOtpStoreBuilder")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_attempts", &self.reconnect_attempts)
            .finish()
    }
}

impl RedisOtpStoreBuilder {
    /// The prefix put before every key (default [`DEFAULT_REDIS_PREFIX`]).
    ///
    /// Give each application (or each environment) sharing one Redis its own prefix. It may not
    /// contain `{` or `}`: the hash tag of a key must come from the key itself.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its answer (default 2 s); past it the call fails with
    /// a transient [`StoreError`] of kind `Timeout`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times a lost connection is retried, with exponential backoff, before a call
    /// fails (default 2). Later calls start reconnecting again.
    pub fn reconnect_attempts(mut self, attempts: usize) -> Self {
        self.reconnect_attempts = attempts;
        self
    }

    /// Connects to Redis.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a malformed URL or a prefix with `{` or `}`;
    /// [`Error::Store`] when the server cannot be reached or does not answer in time.
    pub async fn connect(self) -> Result<RedisOtpStore, Error> {
        check_prefix(&self.prefix)?;
        let conn = self.connection().await?;
        RedisOtpStore::with_conn(conn, self.prefix)
    }
}

/// A key prefix may not hold a hash tag: the tag of a key must come from the key itself.
fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.contains(['{', '}']) {
        return Err(Error::InvalidConfig(
            "the Redis key prefix may not contain `{` or `}`".into(),
        ));
    }
    Ok(())
}

impl RedisOtpStoreBuilder {
    async fn connection(&self) -> Result<Conn, Error> {
        #[cfg(feature = "redis-cluster")]
        if !self.nodes.is_empty() {
            return self.cluster_connection().await;
        }
        // The error text of a bad URL may quote the URL and its password: not passed on.
        let client = redis::Client::open(self.url.as_str())
            .map_err(|_| Error::InvalidConfig("the Redis URL is not valid".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_attempts)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Conn::Single(conn))
    }

    #[cfg(feature = "redis-cluster")]
    async fn cluster_connection(&self) -> Result<Conn, Error> {
        // As for one server, a bad URL's error text is not passed on.
        let retries = u32::try_from(self.reconnect_attempts).unwrap_or(u32::MAX);
        let client =
            ::redis::cluster::ClusterClientBuilder::new(self.nodes.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout)
                .retries(retries)
                .min_retry_wait(50)
                .max_retry_wait(1_000)
                .build()
                .map_err(|_| {
                    Error::InvalidConfig("a Redis Cluster node URL is not valid".into())
                })?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| Error::Store(store_error(e)))?;
        Ok(Conn::Cluster(std::sync::Arc::new(Cluster {
            client,
            connect_timeout: self.connect_timeout,
            current: std::sync::Mutex::new(conn),
            timeouts_in_a_row: std::sync::atomic::AtomicU32::new(0),
            renewing: std::sync::atomic::AtomicBool::new(false),
            renewals: std::sync::atomic::AtomicU64::new(0),
        })))
    }
}

impl RedisOtpStore {
    /// A builder for a store on a Redis Cluster, given some of its nodes (`redis://host:port`
    /// each; the client learns the others and the slot map from them). Feature `redis-cluster`.
    ///
    /// The options of [`RedisOtpStoreBuilder`] apply; `reconnect_attempts` is how many times a
    /// call is retried after a redirection, `TRYAGAIN` or a lost connection. After 8 timeouts
    /// in a row the store builds a new cluster connection (the redis crate's can stop answering
    /// after a resharding); [`connection_renewals`](RedisOtpStore::connection_renewals) counts
    /// them.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), twofactor::Error> {
    /// use twofactor::RedisOtpStore;
    ///
    /// let store = RedisOtpStore::cluster_builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .prefix("acme:2fa:")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_builder(
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> RedisOtpStoreBuilder {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut builder = Self::builder(nodes.first().cloned().unwrap_or_default());
        builder.nodes = nodes;
        builder
    }

    /// A builder for a store at `url` (`redis://host:port/db`, `rediss://` for TLS is not
    /// enabled in this build).
    pub fn builder(url: impl Into<String>) -> RedisOtpStoreBuilder {
        RedisOtpStoreBuilder {
            url: url.into(),
            #[cfg(feature = "redis-cluster")]
            nodes: Vec::new(),
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            reconnect_attempts: 2,
        }
    }

    /// Connects to `url` with the default prefix and timeouts.
    ///
    /// # Errors
    ///
    /// As [`RedisOtpStoreBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect().await
    }

    /// A store on a connection the host already has, so it opens no second one. The
    /// connection's own timeouts and reconnection settings apply; `prefix` is as for
    /// [`RedisOtpStoreBuilder::prefix`] ([`DEFAULT_REDIS_PREFIX`] for the default). The
    /// connection must come from the `redis` crate version this crate uses (1.x).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::{RedisOtpStore, DEFAULT_REDIS_PREFIX};
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?; // the host's, shared
    /// let store = RedisOtpStore::from_connection(conn.clone(), DEFAULT_REDIS_PREFIX)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a prefix with `{` or `}`.
    pub fn from_connection(
        conn: ConnectionManager,
        prefix: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::with_conn(Conn::Single(conn), prefix)
    }

    /// The store on a connection made or given: the prefix checked, the scripts prepared.
    fn with_conn(conn: Conn, prefix: impl Into<String>) -> Result<Self, Error> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        Ok(RedisOtpStore {
            conn,
            prefix,
            scripts: std::sync::Arc::new(Scripts {
                put_if_absent: Script::new(PUT_IF_ABSENT),
                increment: Script::new(INCREMENT),
                advance: Script::new(ADVANCE),
                begin_challenge: Script::new(BEGIN_CHALLENGE),
                reserve_send: Script::new(RESERVE_SEND),
                store_code: Script::new(STORE_CODE),
                open_attempt: Script::new(OPEN_ATTEMPT),
                settle: Script::new(SETTLE),
                user_state: Script::new(USER_STATE),
            }),
        })
    }

    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many times the cluster connection was replaced after it stopped answering (see
    /// [`cluster_builder`](Self::cluster_builder)); 0 on a single server.
    pub fn connection_renewals(&self) -> u64 {
        match &self.conn {
            Conn::Single(_) => 0,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(h) => h.renewals.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    fn full_key(&self, key: &StoreKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }

    /// Runs one composite script: one round trip (`EVALSHA`; after a server restart the script
    /// is loaded once more).
    async fn run(&self, call: &ScriptInvocation<'_>) -> Result<Reply, StoreError> {
        let mut conn = self.conn.clone();
        let value: Value = call.invoke_async(&mut conn).await.map_err(store_error)?;
        Reply::parse(value)
    }
}

/// Maps a Redis failure to a [`StoreError`], keeping it as the source.
fn store_error(e: RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::timeout(e);
    }
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        return StoreError::unavailable(e);
    }
    // During a resharding a script can reach a node that no longer (or not yet) serves its
    // slot. Every key of a script shares one slot, so Redis refuses its first key access,
    // before any write: the call did nothing, and a retry reaches the right node.
    if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && e.detail().is_some_and(|d| d.contains("non local key"))
    {
        return StoreError::unavailable(e);
    }
    // A record of the other layout under the key: a string where a composite operation keeps a
    // hash, or the reverse.
    if e.code() == Some("WRONGTYPE") {
        return StoreError::corrupt(e);
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => StoreError::unavailable(e),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::corrupt(e),
        _ => StoreError::other(e),
    }
}

/// A fixed-width decimal field.
fn digits(n: u64) -> String {
    format!("{n:0DIGITS$}")
}

/// The Redis TTL for a record that expires at `expires_at`, seen at `now`.
fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> u64 {
    expires_at
        .as_unix_secs()
        .saturating_sub(now.as_unix_secs())
        .saturating_mul(1_000)
        .saturating_add(GC_GRACE_MS)
        .min(MAX_TTL_MS)
}

fn encode(expires_at: Timestamp, tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DIGITS + 1 + payload.len());
    v.extend_from_slice(digits(expires_at.as_unix_secs()).as_bytes());
    v.push(tag);
    v.extend_from_slice(payload);
    v
}

fn parse_digits(field: &[u8]) -> Result<u64, StoreError> {
    if field.len() != DIGITS || !field.iter().all(u8::is_ascii_digit) {
        return Err(StoreError::corrupt("a Redis record has a malformed number"));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::corrupt("a Redis record has a malformed number"))
}

/// Decodes a stored record and returns its value when it is live at `now`.
fn decode_live(raw: Option<Vec<u8>>, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let (Some(exp), Some(&tag), Some(payload)) =
        (raw.get(..DIGITS), raw.get(DIGITS), raw.get(DIGITS + 1..))
    else {
        return Err(StoreError::corrupt("a Redis record is too short"));
    };
    if parse_digits(exp)? <= now.as_unix_secs() {
        return Ok(None);
    }
    match tag {
        TAG_BYTES => Ok(Some(payload.to_vec())),
        TAG_NUMBER => Ok(Some(parse_digits(payload)?.to_string().into_bytes())),
        _ => Err(StoreError::corrupt("a Redis record has an unknown type")),
    }
}

/// A number for a script, clamped at 2^53 - 1 so that a Lua number holds it exactly.
fn lua_num(n: u64) -> u64 {
    n.min(LUA_MAX)
}

/// A time for a script, in seconds, clamped like [`lua_num`].
fn lua_time(t: Timestamp) -> u64 {
    lua_num(t.as_unix_secs())
}

/// A duration for a script, in whole seconds (as [`Timestamp::saturating_add`] counts it),
/// clamped like [`lua_num`].
fn lua_secs(d: Duration) -> u64 {
    lua_num(d.as_secs())
}

fn malformed_reply() -> StoreError {
    StoreError::corrupt("a Redis script gave a malformed reply")
}

/// A composite script's reply: an array whose first element names the outcome, then its values.
#[derive(Debug)]
struct Reply {
    outcome: String,
    rest: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Reads a reply; the outcome `corrupt` (a malformed record, with its reason) is an error.
    fn parse(value: Value) -> Result<Self, StoreError> {
        let Value::Array(items) = value else {
            return Err(malformed_reply());
        };
        let mut rest = items.into_iter();
        let outcome = text(rest.next())?;
        let mut reply = Reply { outcome, rest };
        if reply.outcome == "corrupt" {
            let reason = reply.word()?;
            return Err(StoreError::corrupt(format!("Redis holds a {reason}")));
        }
        Ok(reply)
    }

    fn word(&mut self) -> Result<String, StoreError> {
        text(self.rest.next())
    }

    fn opt_num(&mut self) -> Result<Option<u64>, StoreError> {
        match self.rest.next() {
            Some(Value::Nil) => Ok(None),
            Some(Value::Int(n)) => u64::try_from(n).map(Some).map_err(|_| malformed_reply()),
            _ => Err(malformed_reply()),
        }
    }

    fn num(&mut self) -> Result<u64, StoreError> {
        self.opt_num()?.ok_or_else(malformed_reply)
    }

    fn count(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.num()?).map_err(|_| malformed_reply())
    }

    fn time(&mut self) -> Result<Timestamp, StoreError> {
        self.num().map(Timestamp::from_unix_secs)
    }

    fn opt_time(&mut self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_num()?.map(Timestamp::from_unix_secs))
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.rest.next() {
            Some(Value::Nil) => Ok(None),
            Some(Value::BulkString(b)) => Ok(Some(b)),
            _ => Err(malformed_reply()),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        self.opt_bytes()?.ok_or_else(malformed_reply)
    }

    /// A refused send: its kind, then its end.
    fn refusal(&mut self, kind: &str) -> Result<SendRefused, StoreError> {
        let until = self.time()?;
        match kind {
            "cooldown" => Ok(SendRefused::Cooldown { until }),
            "capped" => Ok(SendRefused::Capped { until }),
            _ => Err(malformed_reply()),
        }
    }

    fn unexpected<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::corrupt(format!(
            "a Redis script gave an unexpected outcome `{}`",
            self.outcome
        )))
    }
}

fn text(value: Option<Value>) -> Result<String, StoreError> {
    match value {
        Some(Value::BulkString(b)) => String::from_utf8(b).map_err(|_| malformed_reply()),
        Some(Value::SimpleString(s)) => Ok(s),
        _ => Err(malformed_reply()),
    }
}

#[async_trait]
impl OtpStore for RedisOtpStore {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.full_key(key))
            .arg(encode(expires_at, TAG_BYTES, value))
            .arg("PX")
            .arg(ttl_ms(expires_at, now))
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .scripts
            .put_if_absent
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(encode(expires_at, TAG_BYTES, value))
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(stored == 1)
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.full_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        decode_live(raw, now)
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.full_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        decode_live(raw, now)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.full_key(key))
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_error)
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let count: i64 = self
            .scripts
            .increment
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(digits(expires_at.as_unix_secs()))
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        u64::try_from(count).map_err(|_| StoreError::corrupt("increment on a key that holds bytes"))
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let value = digits(value);
        let stored: i64 = self
            .scripts
            .advance
            .key(self.full_key(key))
            .arg(digits(now.as_unix_secs()))
            .arg(encode(expires_at, TAG_NUMBER, value.as_bytes()))
            .arg(value)
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        match stored {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::corrupt("advance on a key that holds bytes")),
        }
    }

    // ---- composite operations: one script each (see the module docs) -------------------------

    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        let mut call = self.scripts.begin_challenge.prepare_invoke();
        call.key(self.full_key(new.user))
            .key(self.full_key(new.challenge))
            .arg(lua_time(now))
            .arg(lua_secs(new.limits.failure_window))
            .arg(lua_secs(new.limits.retention))
            .arg(new.value)
            .arg(lua_time(new.expires_at))
            .arg(if new.send_required { "1" } else { "0" });
        if let Some((spec, code)) = &new.send {
            call.key(self.full_key(spec.cooldown))
                .arg(*code)
                .arg(lua_time(spec.cooldown_until))
                .arg(spec.max_sends)
                .arg(lua_secs(spec.send_window));
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "locked" => Ok(Begun::Locked {
                until: reply.time()?,
            }),
            "refused" => {
                let kind = reply.word()?;
                Ok(Begun::SendRefused(reply.refusal(&kind)?))
            }
            "collision" => Ok(Begun::Collision),
            "created" => {
                let send = match reply.word()?.as_str() {
                    "none" => None,
                    "granted" => Some(Ok(())),
                    kind => Some(Err(reply.refusal(kind)?)),
                };
                Ok(Begun::Created { send })
            }
            _ => reply.unexpected(),
        }
    }

    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        let mut call = self.scripts.reserve_send.prepare_invoke();
        call.key(self.full_key(user))
            .key(self.full_key(spec.cooldown))
            .arg(lua_time(now))
            .arg(lua_time(spec.cooldown_until))
            .arg(spec.max_sends)
            .arg(lua_secs(spec.send_window));
        if let Some(challenge) = challenge {
            call.key(self.full_key(challenge));
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "nochallenge" => Ok(Reserved::NoChallenge),
            "granted" => Ok(Reserved::Granted(reply.opt_bytes()?)),
            "cooldown" | "capped" => {
                let kind = std::mem::take(&mut reply.outcome);
                Ok(Reserved::Refused(reply.refusal(&kind)?))
            }
            _ => reply.unexpected(),
        }
    }

    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut call = self.scripts.store_code.prepare_invoke();
        call.key(self.full_key(key)).arg(lua_time(now)).arg(code);
        match create {
            Some((value, expires_at)) => call.arg("1").arg(value).arg(lua_time(expires_at)),
            None => call.arg("0"),
        };
        let reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "stored" => Ok(true),
            "missing" => Ok(false),
            _ => reply.unexpected(),
        }
    }

    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        let mut call = self.scripts.open_attempt.prepare_invoke();
        call.key(self.full_key(spec.user))
            .arg(lua_time(now))
            .arg(spec.limits.threshold)
            .arg(lua_secs(spec.limits.failure_window))
            .arg(lua_secs(spec.limits.retention));
        if let Some((challenge, max_attempts)) = spec.challenge {
            call.key(self.full_key(challenge)).arg(max_attempts);
        }
        let mut reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "nochallenge" => Ok(Opened::NoChallenge),
            "exhausted" => Ok(Opened::Exhausted),
            "locked" => Ok(Opened::Locked {
                until: reply.opt_time()?,
            }),
            "open" => {
                let attempts = reply.count()?;
                let failures = reply.count()?;
                let level = reply.count()?;
                let challenge = match spec.challenge {
                    Some(_) => Some(ChallengeState {
                        value: reply.bytes()?,
                        code: reply.opt_bytes()?,
                        attempts,
                        expires_at: reply.time()?,
                    }),
                    None => None,
                };
                Ok(Opened::Open(OpenAttempt {
                    challenge,
                    attempts,
                    failures,
                    level,
                }))
            }
            _ => reply.unexpected(),
        }
    }

    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        let mut call = self.scripts.settle.prepare_invoke();
        call.key(self.full_key(settlement.user))
            .arg(lua_time(now))
            .arg(lua_secs(settlement.limits.failure_window))
            .arg(lua_secs(settlement.limits.retention));
        match settlement.outcome {
            Outcome::Passed { totp_step } => {
                let step = totp_step.map(|s| lua_num(s).to_string());
                call.arg("pass").arg(step.unwrap_or_default());
            }
            Outcome::Failed => {
                call.arg("failed");
            }
            Outcome::Lock { until, level } => {
                call.arg("lock").arg(lua_time(until)).arg(level);
            }
        }
        if let Some(challenge) = settlement.challenge {
            call.key(self.full_key(challenge));
        }
        let reply = self.run(&call).await?;
        match reply.outcome.as_str() {
            "done" => Ok(Settled::Done),
            "gone" => Ok(Settled::ChallengeGone),
            "replayed" => Ok(Settled::Replayed),
            _ => reply.unexpected(),
        }
    }

    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        let mut call = self.scripts.user_state.prepare_invoke();
        call.key(self.full_key(user))
            .arg(lua_time(now))
            .arg(lua_secs(limits.failure_window));
        let mut reply = self.run(&call).await?;
        if reply.outcome != "user" {
            return reply.unexpected();
        }
        Ok(UserState {
            failures: reply.count()?,
            failures_until: reply.time()?,
            level: reply.count()?,
            locked_until: reply.time()?,
            last_step: reply.opt_num()?,
            sends: reply.count()?,
            sends_until: reply.time()?,
            last_verified_at: reply.opt_time()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_on_a_node_without_its_slot_is_transient() {
        use crate::error::StoreErrorKind;
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "response error",
            "Script attempted to access a non local key in a cluster node script: 15bf, on \
             @user_script:95."
                .to_owned(),
        ));
        let e = store_error(moved);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(e.is_transient());
        let other = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "response error",
            "user_script:1: some other script error".to_owned(),
        ));
        assert!(!store_error(other).is_transient());
    }

    #[test]
    fn records_round_trip_and_expire_by_now() {
        let rec = encode(Timestamp::from_unix_secs(100), TAG_BYTES, b"\x00v\xff");
        let at = |t| decode_live(Some(rec.clone()), Timestamp::from_unix_secs(t)).unwrap();
        assert_eq!(at(99).as_deref(), Some(&b"\x00v\xff"[..]));
        assert_eq!(at(100), None);
        let n = encode(Timestamp::MAX, TAG_NUMBER, digits(42).as_bytes());
        assert_eq!(
            decode_live(Some(n), Timestamp::EPOCH).unwrap().as_deref(),
            Some(&b"42"[..])
        );
    }

    #[test]
    fn fixed_width_fields_order_like_numbers() {
        assert!(digits(9) < digits(10));
        assert!(digits(u64::MAX - 1) < digits(u64::MAX));
        assert_eq!(digits(u64::MAX).len(), DIGITS);
    }

    #[test]
    fn malformed_records_are_corrupt_not_panics() {
        for raw in [
            &b""[..],
            b"123",
            b"0000000000000000000xb",
            b"00000000000000000099zv",
        ] {
            let e = decode_live(Some(raw.to_vec()), Timestamp::EPOCH).unwrap_err();
            assert_eq!(e.kind(), crate::StoreErrorKind::Corrupt);
        }
    }

    #[test]
    fn ttl_covers_the_lifetime_and_saturates() {
        let now = Timestamp::from_unix_secs(1_000);
        assert_eq!(ttl_ms(Timestamp::from_unix_secs(1_060), now), 120_000);
        assert_eq!(ttl_ms(Timestamp::from_unix_secs(10), now), GC_GRACE_MS);
        assert_eq!(ttl_ms(Timestamp::MAX, now), MAX_TTL_MS);
    }
    #[test]
    fn numbers_for_lua_clamp_at_two_to_the_53_minus_one() {
        assert_eq!(LUA_MAX, 9_007_199_254_740_991);
        assert_eq!(lua_num(LUA_MAX - 1), LUA_MAX - 1);
        assert_eq!(lua_num(LUA_MAX), LUA_MAX);
        assert_eq!(lua_num(LUA_MAX + 1), LUA_MAX);
        assert_eq!(lua_num(u64::MAX), LUA_MAX);
        assert_eq!(
            lua_time(Timestamp::from_unix_secs(1_700_000_000)),
            1_700_000_000
        );
        assert_eq!(lua_time(Timestamp::MAX), LUA_MAX);
        // Whole seconds, as `Timestamp::saturating_add` counts a duration.
        assert_eq!(lua_secs(Duration::from_millis(1_999)), 1);
        assert_eq!(lua_secs(Duration::MAX), LUA_MAX);
        // The clamp is the last integer a double holds exactly, and its sum with itself is past
        // it: saturating there in the scripts is exact.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let round_trip = |n: u64| (n as f64) as u64;
        assert_eq!(round_trip(LUA_MAX), LUA_MAX);
        assert_ne!(round_trip(LUA_MAX + 2), LUA_MAX + 2);
        #[allow(clippy::cast_precision_loss)]
        let twice = LUA_MAX as f64 + LUA_MAX as f64;
        assert!(twice > LUA_MAX as f64);
    }

    #[test]
    fn the_lua_prelude_uses_the_rust_constants() {
        let prelude = lua_prelude!();
        assert!(prelude.contains(&format!("local MAX = {LUA_MAX}\n")));
        assert!(prelude.contains(&format!("local GRACE_MS = {GC_GRACE_MS}\n")));
        assert!(prelude.contains(&format!("local MAX_TTL_MS = {MAX_TTL_MS}\n")));
        for script in COMPOSITE_SCRIPTS {
            assert!(script.starts_with(prelude));
        }
    }

    const COMPOSITE_SCRIPTS: [&str; 6] = [
        BEGIN_CHALLENGE,
        RESERVE_SEND,
        STORE_CODE,
        OPEN_ATTEMPT,
        SETTLE,
        USER_STATE,
    ];

    /// Every Redis command of a composite script names a key passed in `KEYS` (directly, or as
    /// the `key` parameter of a prelude function called with one): the script stays on the slot
    /// of those keys.
    #[test]
    fn composite_scripts_touch_only_their_keys() {
        for script in COMPOSITE_SCRIPTS {
            let mut rest = script;
            let mut calls = 0;
            // `redis.call('` and `redis.pcall('` alike.
            while let Some(at) = rest.find("call('") {
                calls += 1;
                let after = rest.get(at + "call('".len()..).unwrap_or_default();
                let key = after.split_once(", ").map_or("", |(_, k)| k);
                assert!(
                    key.starts_with("key,") || key.starts_with("key)") || key.starts_with("KEYS["),
                    "a command on another key: {}",
                    after.lines().next().unwrap_or_default()
                );
                rest = after;
            }
            assert!(calls >= 7, "the prelude's commands at least");
            for helper in [
                "load_user(",
                "save_user(",
                "load_challenge(",
                "load_cooldown(",
                "start_cooldown(",
                "save_challenge(",
                "count_attempt(",
            ] {
                let body = script.get(lua_prelude!().len()..).unwrap_or_default();
                for (at, _) in body.match_indices(helper) {
                    let arg = body.get(at + helper.len()..).unwrap_or_default();
                    assert!(arg.starts_with("KEYS["), "{helper} on another key");
                }
            }
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn script_replies_parse_and_refuse_garbage() {
        let mut open = Reply::parse(Value::Array(vec![
            bulk("open"),
            Value::Int(2),
            Value::Int(3),
            Value::Int(1),
            Value::BulkString(b"\x00v\xff".to_vec()),
            Value::Nil,
            Value::Int(9_007_199_254_740_991),
        ]))
        .unwrap();
        assert_eq!(open.outcome, "open");
        assert_eq!(
            (
                open.count().unwrap(),
                open.count().unwrap(),
                open.count().unwrap()
            ),
            (2, 3, 1)
        );
        assert_eq!(open.bytes().unwrap(), b"\x00v\xff");
        assert_eq!(open.opt_bytes().unwrap(), None);
        assert_eq!(open.time().unwrap(), Timestamp::from_unix_secs(LUA_MAX));
        assert!(open.opt_num().is_err(), "past the end");

        let mut refused = Reply::parse(Value::Array(vec![bulk("capped"), Value::Int(60)])).unwrap();
        assert_eq!(
            refused.refusal("capped").unwrap(),
            SendRefused::Capped {
                until: Timestamp::from_unix_secs(60)
            }
        );

        let corrupt = Reply::parse(Value::Array(vec![
            bulk("corrupt"),
            bulk("malformed user record"),
        ]))
        .unwrap_err();
        assert_eq!(corrupt.kind(), crate::StoreErrorKind::Corrupt);
        assert!(corrupt.to_string().contains("malformed user record"));

        for garbage in [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::BulkString(vec![0xff])]),
        ] {
            let e = Reply::parse(garbage).unwrap_err();
            assert_eq!(e.kind(), crate::StoreErrorKind::Corrupt);
        }
        let mut negative = Reply::parse(Value::Array(vec![bulk("user"), Value::Int(-1)])).unwrap();
        assert!(negative.num().is_err());
        let mut too_big =
            Reply::parse(Value::Array(vec![bulk("user"), Value::Int(1 << 40)])).unwrap();
        assert!(too_big.count().is_err(), "a count is a u32");
        let odd = Reply::parse(Value::Array(vec![bulk("what")])).unwrap();
        assert!(odd.unexpected::<()>().is_err());
    }
}

/// The native layout on a live Redis (`TWOFACTOR_TEST_REDIS_URL`; skipped without it, or a
/// failure under `TWOFACTOR_REQUIRE_SERVERS=1`): the records, their TTLs and the keys touched,
/// the clamp of far times, and records of the other layout.
#[cfg(test)]
mod live {
    use super::*;
    use crate::StoreErrorKind;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn limits() -> UserLimits {
        UserLimits::new(5, Duration::from_secs(600), Duration::from_secs(3_600))
    }

    struct Keys {
        user: StoreKey,
        challenge: StoreKey,
        cooldown: StoreKey,
    }

    fn keys() -> Keys {
        let tag = format!("{:016x}", rand::random::<u64>());
        Keys {
            user: StoreKey::new(format!("u:{{{tag}}}")),
            challenge: StoreKey::new(format!("u:{{{tag}}}:c")),
            cooldown: StoreKey::new(format!("u:{{{tag}}}:c:cool")),
        }
    }

    /// The live Redis (`TWOFACTOR_TEST_REDIS_URL`), or `None` after printing `skipped: …`. With
    /// `TWOFACTOR_REQUIRE_SERVERS=1` (set by CI) an absent URL fails the test instead.
    fn redis_url(name: &str) -> Option<String> {
        match std::env::var("TWOFACTOR_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("TWOFACTOR_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => panic!(
                "{name}: TWOFACTOR_TEST_REDIS_URL is not set but TWOFACTOR_REQUIRE_SERVERS=1: \
                 the live Redis tests must run"
            ),
            _ => {
                eprintln!("skipped: {name}: TWOFACTOR_TEST_REDIS_URL is not set");
                None
            }
        }
    }

    /// Runs `test` with a store under a prefix of its own, and removes its keys afterwards.
    fn with_redis<F, Fut>(name: &str, test: F)
    where
        F: FnOnce(RedisOtpStore) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let Some(url) = redis_url(name) else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let prefix = format!("twofactor-test:{:016x}:", rand::random::<u64>());
            let store = RedisOtpStore::builder(url)
                .prefix(prefix.clone())
                .connect()
                .await
                .unwrap();
            test(store.clone()).await;
            let mut conn = store.conn.clone();
            let left: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !left.is_empty() {
                redis::cmd("DEL")
                    .arg(left)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
            }
        });
    }

    async fn query<T: redis::FromRedisValue>(store: &RedisOtpStore, cmd: &mut redis::Cmd) -> T {
        let mut conn = store.conn.clone();
        cmd.query_async(&mut conn).await.unwrap()
    }

    async fn pttl(store: &RedisOtpStore, key: &StoreKey) -> i64 {
        query(store, redis::cmd("PTTL").arg(store.full_key(key))).await
    }

    /// The user's record as stored: its [`UserState`] and its expiry.
    async fn raw_user(store: &RedisOtpStore, key: &StoreKey) -> (UserState, u64) {
        let raw: Vec<u8> = query(store, redis::cmd("GET").arg(store.full_key(key))).await;
        let (state, exp) = raw.split_at(crate::flow::USER_STATE_LEN);
        (
            UserState::from_bytes(state).unwrap(),
            u64::from_be_bytes(exp.try_into().unwrap()),
        )
    }

    #[test]
    fn records_ttls_and_keys() {
        with_redis("records_ttls_and_keys", |store| async move {
            let k = keys();
            let (value, code) = (&b"\x00value\xff"[..], &b"\xffcode\x00"[..]);
            let send = SendSpec::new(&k.cooldown, at(T0 + 60), 3, Duration::from_secs(900));
            let new = NewChallenge {
                user: &k.user,
                limits: limits(),
                challenge: &k.challenge,
                value,
                expires_at: at(T0 + 300),
                send: Some((send, code)),
                send_required: true,
            };
            assert_eq!(
                store.begin_challenge(&new, at(T0)).await.unwrap(),
                Begun::Created { send: Some(Ok(())) }
            );
            let mut all: Vec<String> = query(
                &store,
                redis::cmd("KEYS").arg(format!("{}*", store.prefix())),
            )
            .await;
            all.sort();
            let mut expected = vec![
                store.full_key(&k.user),
                store.full_key(&k.challenge),
                store.full_key(&k.cooldown),
            ];
            expected.sort();
            assert_eq!(all, expected, "only the keys passed in");
            let kind = |key: &StoreKey| {
                let key = store.full_key(key);
                let store = store.clone();
                async move { query::<String>(&store, redis::cmd("TYPE").arg(key)).await }
            };
            assert_eq!(kind(&k.user).await, "string");
            assert_eq!(kind(&k.challenge).await, "string");
            assert_eq!(kind(&k.cooldown).await, "string");
            let ch: Vec<u8> =
                query(&store, redis::cmd("GET").arg(store.full_key(&k.challenge))).await;
            let mut expected_ch = vec![1u8];
            expected_ch.extend_from_slice(&(T0 + 300).to_be_bytes());
            expected_ch.extend_from_slice(&0u32.to_be_bytes());
            expected_ch.push(1);
            expected_ch.extend_from_slice(&u32::try_from(code.len()).unwrap().to_be_bytes());
            expected_ch.extend_from_slice(code);
            expected_ch.extend_from_slice(value);
            assert_eq!(ch, expected_ch, "version, expiry, attempts, code, value");
            let cool: Vec<u8> =
                query(&store, redis::cmd("GET").arg(store.full_key(&k.cooldown))).await;
            assert_eq!(cool, b"1700000060");
            // TTLs: the lifetime plus the grace period (less the milliseconds since the write).
            let near = |ttl: i64, secs: i64| {
                let full = secs * 1_000 + 60_000;
                (full - 5_000..=full).contains(&ttl)
            };
            assert!(near(pttl(&store, &k.challenge).await, 300));
            assert!(near(pttl(&store, &k.cooldown).await, 60));
            assert!(near(pttl(&store, &k.user).await, 3_600), "kept `retention`");

            let spec = AttemptSpec {
                challenge: Some((&k.challenge, 3)),
                user: &k.user,
                limits: limits(),
            };
            let Opened::Open(a) = store.open_attempt(&spec, at(T0 + 1)).await.unwrap() else {
                panic!("not opened");
            };
            let ch = a.challenge.unwrap();
            assert_eq!(
                (ch.value.as_slice(), ch.code.as_deref()),
                (value, Some(code))
            );
            assert_eq!((a.attempts, ch.attempts, a.failures), (1, 1, 1));
            let pass = Settlement {
                challenge: Some(&k.challenge),
                user: &k.user,
                limits: limits(),
                outcome: Outcome::Passed { totp_step: None },
            };
            assert_eq!(
                store.settle(&pass, at(T0 + 2)).await.unwrap(),
                Settled::Done
            );
            let exists: i64 = query(
                &store,
                redis::cmd("EXISTS").arg(store.full_key(&k.challenge)),
            )
            .await;
            assert_eq!(exists, 0, "a pass deletes the challenge");
            let (user, expires_at) = raw_user(&store, &k.user).await;
            assert_eq!(
                user.last_verified_at,
                Some(at(T0 + 2)),
                "the user record is UserState::to_bytes, then its expiry"
            );
            assert_eq!((user.failures, user.sends, user.last_step), (0, 1, None));
            assert_eq!(expires_at, T0 + 2 + 3_600, "kept `retention`");
        });
    }

    #[test]
    fn far_times_and_steps_clamp_at_two_to_the_53_minus_one() {
        with_redis("far_times_and_steps_clamp", |store| async move {
            let k = keys();
            let far = at(LUA_MAX);
            let new = NewChallenge {
                user: &k.user,
                limits: limits(),
                challenge: &k.challenge,
                value: b"v",
                expires_at: Timestamp::MAX,
                send: None,
                send_required: false,
            };
            assert_eq!(
                store.begin_challenge(&new, at(T0)).await.unwrap(),
                Begun::Created { send: None }
            );
            let ttl = pttl(&store, &k.challenge).await;
            assert!(ttl > 0 && ttl <= i64::try_from(MAX_TTL_MS).unwrap());
            let spec = AttemptSpec {
                challenge: Some((&k.challenge, 3)),
                user: &k.user,
                limits: limits(),
            };
            let Opened::Open(a) = store.open_attempt(&spec, at(T0)).await.unwrap() else {
                panic!("not opened");
            };
            assert_eq!(a.challenge.unwrap().expires_at, far);
            let pass = |step| Settlement {
                challenge: Some(&k.challenge),
                user: &k.user,
                limits: limits(),
                outcome: Outcome::Passed {
                    totp_step: Some(step),
                },
            };
            assert_eq!(
                store.settle(&pass(u64::MAX), at(T0)).await.unwrap(),
                Settled::Done
            );
            let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
            assert_eq!(state.last_step, Some(LUA_MAX));
            store.begin_challenge(&new, at(T0)).await.unwrap();
            assert_eq!(
                store.settle(&pass(LUA_MAX + 1), at(T0)).await.unwrap(),
                Settled::Replayed,
                "steps past the clamp are one step"
            );
            let lock = Settlement {
                challenge: None,
                user: &k.user,
                limits: limits(),
                outcome: Outcome::Lock {
                    until: Timestamp::MAX,
                    level: 1,
                },
            };
            assert_eq!(store.settle(&lock, at(T0)).await.unwrap(), Settled::Done);
            let ttl = pttl(&store, &k.user).await;
            assert!(ttl > 0 && ttl <= i64::try_from(MAX_TTL_MS).unwrap());
            let state = store.user_state(&k.user, &limits(), at(T0)).await.unwrap();
            assert_eq!((state.locked_until, state.level), (far, 1));
            assert_eq!(
                store.open_attempt(&spec, at(T0)).await.unwrap(),
                Opened::Locked { until: Some(far) }
            );
            // The lock lapses at the clamped time, as the challenge does.
            let state = store
                .user_state(&k.user, &limits(), Timestamp::MAX)
                .await
                .unwrap();
            assert_eq!(state, UserState::default(), "the record lapsed");
        });
    }

    #[test]
    fn records_of_the_other_layout_are_corrupt() {
        with_redis(
            "records_of_the_other_layout_are_corrupt",
            |store| async move {
                let k = keys();
                store.put(&k.user, b"x", at(T0 + 60), at(T0)).await.unwrap();
                let e = store
                    .user_state(&k.user, &limits(), at(T0))
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                store
                    .store_code(&k.challenge, Some((b"v", at(T0 + 60))), b"c", at(T0))
                    .await
                    .unwrap();
                let e = store.get(&k.challenge, at(T0)).await.unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                let spec = AttemptSpec {
                    challenge: Some((&k.challenge, 3)),
                    user: &k.cooldown,
                    limits: limits(),
                };
                // A primitive's record, a cut or padded record, a bad version, a legacy hash
                // with a malformed field: each is refused, never read as some other state.
                let full: Vec<u8> =
                    query(&store, redis::cmd("GET").arg(store.full_key(&k.challenge))).await;
                let mut bad_version = full.clone();
                bad_version[0] = 2;
                let mut long_code = full.clone();
                long_code[14..18].copy_from_slice(&1_000u32.to_be_bytes());
                for raw in [
                    encode(at(T0 + 60), TAG_BYTES, b"v"),
                    full[..17].to_vec(),
                    bad_version,
                    long_code,
                ] {
                    let _: () = query(
                        &store,
                        redis::cmd("SET").arg(store.full_key(&k.challenge)).arg(raw),
                    )
                    .await;
                    let e = store.open_attempt(&spec, at(T0)).await.unwrap_err();
                    assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                    assert!(e.to_string().contains("malformed challenge record"), "{e}");
                }
                // The user key holds a primitive's record (`put` above): every script refuses it.
                let failed = Settlement {
                    challenge: None,
                    user: &k.user,
                    limits: limits(),
                    outcome: Outcome::Failed,
                };
                let e = store.settle(&failed, at(T0)).await.unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                let mut user_raw = UserState::default().to_bytes().to_vec();
                user_raw.extend_from_slice(&(T0 + 60).to_be_bytes());
                for (at_byte, value) in [(0, 2u8), (25, 2), (46, 7), (55, 0xff)] {
                    let mut raw = user_raw.clone();
                    raw[at_byte] = value;
                    let _: () = query(
                        &store,
                        redis::cmd("SET").arg(store.full_key(&k.user)).arg(raw),
                    )
                    .await;
                    let e = store
                        .user_state(&k.user, &limits(), at(T0))
                        .await
                        .unwrap_err();
                    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "byte {at_byte}");
                }
                let _: () =
                    query(&store, redis::cmd("DEL").arg(store.full_key(&k.challenge))).await;
                let _: () = query(
                    &store,
                    redis::cmd("HSET")
                        .arg(store.full_key(&k.challenge))
                        .arg("e")
                        .arg(T0 + 60)
                        .arg("v")
                        .arg("v")
                        .arg("n")
                        .arg("many"),
                )
                .await;
                let e = store.open_attempt(&spec, at(T0)).await.unwrap_err();
                assert_eq!(e.kind(), StoreErrorKind::Corrupt);
                assert!(e.to_string().contains("malformed challenge record"), "{e}");
            },
        );
    }

    /// Records of the earlier layout (hashes with one decimal field each) are read, so an
    /// upgrade keeps the lock, the run of failures, the send budget, the last TOTP step and the
    /// last verification; the next write replaces them in the new layout.
    #[test]
    fn records_of_the_earlier_hash_layout_are_read_and_replaced() {
        with_redis("records_of_the_earlier_hash_layout", |store| async move {
            let k = keys();
            let hset = |key: &StoreKey, fields: Vec<(&'static str, Vec<u8>)>| {
                let store = store.clone();
                let key = store.full_key(key);
                async move {
                    let mut cmd = redis::cmd("HSET");
                    cmd.arg(&key);
                    for (name, value) in fields {
                        cmd.arg(name).arg(value);
                    }
                    let _: () = query(&store, &mut cmd).await;
                    let _: () = query(&store, redis::cmd("EXPIRE").arg(&key).arg(7_200)).await;
                }
            };
            let num = |n: u64| n.to_string().into_bytes();
            // Locked until T0 + 900 at level 2, with four failures in the run, a last TOTP
            // step, two sends and a last verification.
            hset(
                &k.user,
                vec![
                    ("expires_at", num(T0 + 5_000)),
                    ("failures", num(4)),
                    ("failures_until", num(T0 + 600)),
                    ("level", num(2)),
                    ("locked_until", num(T0 + 900)),
                    ("last_step", num(56_666_666)),
                    ("sends", num(2)),
                    ("sends_until", num(T0 + 2_000)),
                    ("last_verified_at", num(T0 - 100)),
                ],
            )
            .await;
            let legacy = UserState {
                failures: 4,
                failures_until: at(T0 + 600),
                level: 2,
                locked_until: at(T0 + 900),
                last_step: Some(56_666_666),
                sends: 2,
                sends_until: at(T0 + 2_000),
                last_verified_at: Some(at(T0 - 100)),
            };
            assert_eq!(
                store.user_state(&k.user, &limits(), at(T0)).await.unwrap(),
                legacy
            );
            // A challenge opened before the upgrade, with its code and one attempt.
            hset(
                &k.challenge,
                vec![
                    ("e", num(T0 + 3_000)),
                    ("v", b"\x00value".to_vec()),
                    ("c", b"code\xff".to_vec()),
                    ("n", num(1)),
                ],
            )
            .await;
            let spec = AttemptSpec {
                challenge: Some((&k.challenge, 5)),
                user: &k.user,
                limits: limits(),
            };
            assert_eq!(
                store.open_attempt(&spec, at(T0)).await.unwrap(),
                Opened::Locked {
                    until: Some(at(T0 + 900))
                },
                "the lock held in the old layout holds"
            );
            let Opened::Open(a) = store.open_attempt(&spec, at(T0 + 901)).await.unwrap() else {
                panic!("not opened after the lock");
            };
            let ch = a.challenge.unwrap();
            assert_eq!(
                (ch.value.as_slice(), ch.code.as_deref(), ch.attempts),
                (&b"\x00value"[..], Some(&b"code\xff"[..]), 2)
            );
            assert_eq!(
                (a.failures, a.level),
                (1, 2),
                "the run lapsed, the level did not"
            );
            // Both records were rewritten in the new layout, keeping what they held.
            let kind = |key: &StoreKey| {
                let key = store.full_key(key);
                let store = store.clone();
                async move { query::<String>(&store, redis::cmd("TYPE").arg(key)).await }
            };
            assert_eq!(kind(&k.user).await, "string");
            assert_eq!(kind(&k.challenge).await, "string");
            let (user, _) = raw_user(&store, &k.user).await;
            assert_eq!(
                (
                    user.level,
                    user.last_step,
                    user.sends,
                    user.last_verified_at
                ),
                (2, Some(56_666_666), 2, Some(at(T0 - 100)))
            );
            let replay = Settlement {
                challenge: Some(&k.challenge),
                user: &k.user,
                limits: limits(),
                outcome: Outcome::Passed {
                    totp_step: Some(56_666_666),
                },
            };
            assert_eq!(
                store.settle(&replay, at(T0 + 902)).await.unwrap(),
                Settled::Replayed,
                "the last TOTP step of the old layout still refuses a replay"
            );
            // A legacy challenge without a code gets one; a legacy user with no optional
            // fields reads as such.
            let k2 = keys();
            hset(
                &k2.user,
                vec![
                    ("expires_at", num(T0 + 5_000)),
                    ("failures", num(0)),
                    ("failures_until", num(0)),
                    ("level", num(0)),
                    ("locked_until", num(0)),
                    ("sends", num(0)),
                    ("sends_until", num(0)),
                ],
            )
            .await;
            assert_eq!(
                store.user_state(&k2.user, &limits(), at(T0)).await.unwrap(),
                UserState::default()
            );
            hset(
                &k2.challenge,
                vec![("e", num(T0 + 300)), ("v", b"v".to_vec()), ("n", num(0))],
            )
            .await;
            assert!(store
                .store_code(&k2.challenge, None, b"new", at(T0))
                .await
                .unwrap());
            let spec2 = AttemptSpec {
                challenge: Some((&k2.challenge, 5)),
                user: &k2.user,
                limits: limits(),
            };
            let Opened::Open(a) = store.open_attempt(&spec2, at(T0)).await.unwrap() else {
                panic!("not opened");
            };
            let ch = a.challenge.unwrap();
            assert_eq!((ch.code.as_deref(), ch.attempts), (Some(&b"new"[..]), 1));
        });
    }
}
