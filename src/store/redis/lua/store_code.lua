-- store_code (after the prelude): KEYS record; ARGV now, code, create, value, expires_at. Replies
-- `stored` or `missing`; `corrupt reason` for a malformed record.

local ch, bad = load_challenge(KEYS[1])
if bad then return {'corrupt', bad} end
if ARGV[3] == '1' then
  local n = 0
  if ch then n = ch.n end
  -- A new pending record: its attempt count stays; store_code is not told the user, so it is
  -- bound to no epoch.
  save_challenge(KEYS[1], {e = int(ARGV[5]), v = ARGV[4], c = ARGV[2], n = n, epoch = false})
  return {'stored'}
end
if not ch then return {'missing'} end
ch.c = ARGV[2]
save_challenge(KEYS[1], ch)
return {'stored'}
