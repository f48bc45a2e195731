-- The start of every composite script (the Rust code puts it before each): numbers, TTLs and the
-- three records. ARGV[1] of every composite script is now, in Unix seconds. MAX, GRACE_MS and
-- MAX_TTL_MS are the Rust constants LUA_MAX, GC_GRACE_MS and MAX_TTL_MS (a test checks). load_user
-- gives the user's record live at now (the default record when there is none or it lapsed),
-- load_challenge the live challenge or false, load_cooldown the end of a live cooldown or false;
-- each gives nil and a reason for a malformed record.

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

-- The user's record: UserState::to_bytes (version 2: failures, failures_until, level,
-- locked_until, last_step, sends, sends_until, last_verified_at, epoch), then expires_at. A
-- record of version 1 (without the epoch) reads with epoch 0.
local USER_FMT = '>BI4I8I4I8BI8I4I8BI8I4I8'
local USER_LEN = 67
local USER_V1_FMT = '>BI4I8I4I8BI8I4I8BI8I8'
local USER_V1_LEN = 63
-- Epochs wrap at 2^32, as u32 in the rules.
local EPOCHS = 4294967296

local function default_user()
  return {expires_at = 0, failures = 0, failures_until = 0, level = 0, locked_until = 0,
    last_step = false, sends = 0, sends_until = 0, last_verified_at = false, epoch = 0}
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
  local v, failures, failures_until, level, locked_until, has_step, step, sends, sends_until,
    has_verified, verified, epoch, exp
  if #raw == USER_LEN and string.byte(raw, 1) == 2 then
    v, failures, failures_until, level, locked_until, has_step, step, sends, sends_until,
      has_verified, verified, epoch, exp = struct.unpack(USER_FMT, raw)
  elseif #raw == USER_V1_LEN and string.byte(raw, 1) == 1 then
    v, failures, failures_until, level, locked_until, has_step, step, sends, sends_until,
      has_verified, verified, exp = struct.unpack(USER_V1_FMT, raw)
    epoch = 0
  else
    return nil, 'malformed user record'
  end
  local last_step, last_verified_at = opt(has_step, step), opt(has_verified, verified)
  if last_step == nil or last_verified_at == nil or not bin(exp) then
    return nil, 'malformed user record'
  end
  if exp <= now then return u end
  u.expires_at, u.failures, u.failures_until, u.level, u.locked_until = exp, failures,
    bin(failures_until), level, bin(locked_until)
  u.last_step, u.sends, u.sends_until, u.last_verified_at = last_step, sends, bin(sends_until),
    last_verified_at
  u.epoch = epoch
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

-- Writes the user's record, kept until rules::user_expires_at, and never less long than it
-- already was (u.expires_at); without limits (reserve_send) until its earlier expiry or the end
-- of the send window, whichever is later.
local function save_user(key, u, window, retention)
  local exp
  if retention then
    exp = math.max(add(now, retention), u.failures_until, add(u.locked_until, window),
      u.sends_until, u.expires_at)
  else
    exp = math.max(u.expires_at, u.sends_until)
  end
  local step, verified = u.last_step, u.last_verified_at
  redis.call('SET', key, struct.pack(USER_FMT, 2, u.failures, u.failures_until, u.level,
    u.locked_until, step and 1 or 0, step or 0, u.sends, u.sends_until, verified and 1 or 0,
    verified or 0, u.epoch, exp), 'PX', ttl(exp))
end

-- rules::end_challenges: the next epoch, wrapping at 2^32.
local function end_challenges(u)
  u.epoch = (u.epoch + 1) % EPOCHS
  return u.epoch
end

-- rules::in_epoch: whether a challenge stands in the user's epoch (one bound to none always
-- does).
local function in_epoch(ch, u)
  return ch.epoch == false or ch.epoch == u.epoch
end

-- A challenge or pending code: version 2, expires_at, attempts, whether it holds a code, the
-- code's length, whether it is bound to an epoch, the epoch (0 when not); then the code and the
-- value. Version 1 is the same without the two epoch fields, and reads as epoch 0.
local CHALLENGE_FMT = '>BI8I4BI4BI4'
local CHALLENGE_HEAD = 23
local CHALLENGE_V1_FMT = '>BI8I4BI4'
local CHALLENGE_V1_HEAD = 18
-- Where the attempt count starts (0-based, for SETRANGE), in both versions.
local ATTEMPTS_AT = 9

-- A challenge record of the older layout (a hash: e, v, c, n), read so that a challenge open
-- during an upgrade stays valid; the next write replaces it. It reads as epoch 0.
local function load_legacy_challenge(key)
  local f = redis.call('HMGET', key, 'e', 'v', 'c', 'n')
  local e, n = int(f[1]), int(f[4])
  if e == nil or n == nil or not f[2] then return nil, 'malformed challenge record' end
  if e <= now then return false end
  return {e = e, v = f[2], c = f[3], n = n, epoch = 0, legacy = true}
end

local function load_challenge(key)
  local raw = redis.pcall('GET', key)
  if wrong_type(raw) then return load_legacy_challenge(key) end
  if type(raw) == 'table' then return nil, 'unreadable challenge record' end
  if not raw then return false end
  local v, e, n, has_code, len, has_epoch, epoch, head
  v = string.byte(raw, 1)
  if v == 2 and #raw >= CHALLENGE_HEAD then
    v, e, n, has_code, len, has_epoch, epoch = struct.unpack(CHALLENGE_FMT, raw)
    head = CHALLENGE_HEAD
    if has_epoch > 1 or (has_epoch == 0 and epoch ~= 0) then
      return nil, 'malformed challenge record'
    end
    if has_epoch == 0 then epoch = false end
  elseif v == 1 and #raw >= CHALLENGE_V1_HEAD then
    v, e, n, has_code, len = struct.unpack(CHALLENGE_V1_FMT, raw)
    head, epoch = CHALLENGE_V1_HEAD, 0
  else
    return nil, 'malformed challenge record'
  end
  if has_code > 1 or (has_code == 0 and len ~= 0) or not bin(e) or #raw < head + len then
    return nil, 'malformed challenge record'
  end
  if e <= now then return false end
  local c = false
  if has_code == 1 then c = string.sub(raw, head + 1, head + len) end
  return {e = e, n = n, c = c, v = string.sub(raw, head + len + 1), epoch = epoch}
end

-- Writes a challenge in version 2; `ch.epoch` is its epoch, or false for none.
local function save_challenge(key, ch)
  local c = ch.c or ''
  local epoch = ch.epoch or 0
  redis.call('SET', key, struct.pack(CHALLENGE_FMT, 2, ch.e, ch.n, ch.c and 1 or 0, #c,
    ch.epoch and 1 or 0, epoch) .. c .. ch.v, 'PX', ttl(ch.e))
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
