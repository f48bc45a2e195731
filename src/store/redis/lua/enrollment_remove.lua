-- RedisEnrollmentStore::remove: KEYS[1] the record hash, KEYS[2] the codes hash. Deletes the codes
-- and the record; the revision keeps counting. Returns 1.

redis.call('DEL', KEYS[2])
if redis.call('HDEL', KEYS[1], 'record') == 1 then
  redis.call('HINCRBY', KEYS[1], 'revision', 1)
end
return 1
