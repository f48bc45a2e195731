-- end_challenges (after the prelude): KEYS user; ARGV now, failure_window, retention. Replies
-- `epoch` and the user's new epoch; `corrupt reason` for a malformed record.

local window, retention = int(ARGV[2]), int(ARGV[3])
local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, window)
local epoch = end_challenges(u)
save_user(KEYS[1], u, window, retention)
return {'epoch', epoch}
