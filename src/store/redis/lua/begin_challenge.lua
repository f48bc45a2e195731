-- begin_challenge (after the prelude): KEYS user, challenge[, cooldown]; ARGV now, failure_window,
-- retention, value, expires_at, send_required, code, cooldown_until, max_sends, send_window.
-- Replies `locked until`, `refused kind until`, `collision` or `created send until` (send: `none`,
-- `granted`, `cooldown` or `capped`); `corrupt reason` for a malformed record.

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
local e = int(ARGV[5])
-- Stamped with the user's epoch (rules::in_epoch).
save_challenge(KEYS[2], {e = e, v = ARGV[4], c = code, n = 0, epoch = u.epoch})
-- rules::keep_for_challenge: a record whose epoch is not 0 outlives the challenges stamped with
-- it (save_user never shortens it).
local keep = u.epoch ~= 0 and u.expires_at < e
if keep then u.expires_at = e end
if send == 'granted' then
  start_cooldown(KEYS[3], int(ARGV[8]))
  save_user(KEYS[1], u, window, retention)
elseif keep then
  save_user(KEYS[1], u, window, retention)
end
return {'created', send, send_until}
