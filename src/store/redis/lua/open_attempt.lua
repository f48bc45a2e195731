-- open_attempt (after the prelude): KEYS user[, challenge]; ARGV now, threshold, failure_window,
-- retention, max_attempts. Replies `nochallenge`, `exhausted`, `locked until|nil` or `open
-- attempts failures level[ value code|nil expires_at epoch|nil]`; `corrupt reason` for a
-- malformed record.

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
-- A challenge of an earlier epoch is refused as a missing one is, nothing counted.
if ch and not in_epoch(ch, u) then return {'nochallenge'} end
if u.failures == 0 then u.failures_until = add(now, window) end
u.failures = u.failures + 1
save_user(KEYS[1], u, window, retention)
if not ch then return {'open', 0, u.failures, u.level} end
count_attempt(KEYS[2], ch)
return {'open', ch.n, u.failures, u.level, ch.v, ch.c, ch.e, ch.epoch}
