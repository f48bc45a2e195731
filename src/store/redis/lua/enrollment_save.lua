-- RedisEnrollmentStore::save: KEYS[1] the record hash; ARGV[1] the record, ARGV[2] the expected
-- revision (empty: none). Returns the new revision, or nil when the expectation failed and nothing
-- was written.

local cur = redis.call('HMGET', KEYS[1], 'record', 'revision')
if ARGV[2] == '' then
  if cur[1] then return false end
elseif not cur[1] or cur[2] ~= ARGV[2] then
  return false
end
local rev = redis.call('HINCRBY', KEYS[1], 'revision', 1)
redis.call('HSET', KEYS[1], 'record', ARGV[1])
return rev
