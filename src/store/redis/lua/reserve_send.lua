-- reserve_send (after the prelude): KEYS user, cooldown[, challenge]; ARGV now, cooldown_until,
-- max_sends, send_window. Replies `nochallenge`, `cooldown until`, `capped until` or `granted
-- value`; `corrupt reason` for a malformed record.

local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
local value = false
if KEYS[3] then
  local ch, bad = load_challenge(KEYS[3])
  if bad then return {'corrupt', bad} end
  -- A challenge of an earlier epoch is as good as gone.
  if not ch or not in_epoch(ch, u) then return {'nochallenge'} end
  value = ch.v
end
current(u, nil)
local cooldown, bad = load_cooldown(KEYS[2])
if bad then return {'corrupt', bad} end
local refused, t = reserve(u, cooldown, int(ARGV[3]), int(ARGV[4]))
if refused then return {refused, t} end
start_cooldown(KEYS[2], int(ARGV[2]))
save_user(KEYS[1], u, nil, nil)
return {'granted', value}
