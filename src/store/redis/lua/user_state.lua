-- user_state (after the prelude): KEYS user; ARGV now, failure_window. Replies `user` and the
-- fields of UserState in order (nil for an absent option); `corrupt reason` for a malformed
-- record.

local u, bad = load_user(KEYS[1])
if bad then return {'corrupt', bad} end
current(u, int(ARGV[2]))
return {'user', u.failures, u.failures_until, u.level, u.locked_until, u.last_step, u.sends,
  u.sends_until, u.last_verified_at, u.epoch}
