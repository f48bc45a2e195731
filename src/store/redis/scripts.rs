//! The Lua scripts: the three primitives that need one, and the composite operations, one script
//! each, which all start with one prelude. Also the clamp of the numbers passed to them.

use std::time::Duration;

use ::redis::Script;

use crate::clock::Timestamp;

/// `put_if_absent`: KEYS[1]; ARGV: now, record, ttl_ms. Returns 1 when stored, 0 otherwise.
pub(super) const PUT_IF_ABSENT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// `increment`: KEYS[1]; ARGV: now, expires_at, ttl_ms. Returns the new count, or -1 when the
/// live record holds bytes.
pub(super) const INCREMENT: &str = r"
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
pub(super) const ADVANCE: &str = r"
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
pub(super) const LUA_MAX: u64 = (1 << 53) - 1;

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
pub(super) const BEGIN_CHALLENGE: &str = concat!(
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
pub(super) const RESERVE_SEND: &str = concat!(
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
pub(super) const STORE_CODE: &str = concat!(
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
pub(super) const OPEN_ATTEMPT: &str = concat!(
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
pub(super) const SETTLE: &str = concat!(
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
pub(super) const USER_STATE: &str = concat!(
    lua_prelude!(),
    r"
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, int(ARGV[2]))
return {'user', u.failures, u.failures_until, u.level, u.locked_until, u.last_step, u.sends,
  u.sends_until, u.last_verified_at}
"
);

/// The prelude alone, for the tests of the scripts.
#[cfg(test)]
pub(super) const PRELUDE: &str = lua_prelude!();

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
