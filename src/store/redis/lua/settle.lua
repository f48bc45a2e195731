-- settle (after the prelude): KEYS user[, challenge]; ARGV now, failure_window, retention, then
-- `pass` and the TOTP step (empty for none), `failed`, or `lock`, until and level. Replies `done`,
-- `gone` or `replayed`; `corrupt reason` for a malformed record.

local window, retention = int(ARGV[2]), int(ARGV[3])
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, window)
-- rules::settle
local ch = false
if KEYS[2] then
  local bad
  ch, bad = load_challenge(KEYS[2])
  if bad then return {'corrupt', bad} end
  if not ch then return {'gone'} end
end
if ARGV[4] == 'failed' then return {'done'} end
if ARGV[4] == 'pass' then
  -- A pass on a challenge of an earlier epoch: the user's factors changed, or a lock was set,
  -- since it was begun.
  if ch and not in_epoch(ch, u) then return {'gone'} end
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
-- A lock ends every challenge of the user.
end_challenges(u)
save_user(KEYS[1], u, window, retention)
return {'done'}
