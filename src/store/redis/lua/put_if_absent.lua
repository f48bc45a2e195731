-- put_if_absent: stores a record unless a live one is there. KEYS[1] the record's key. ARGV[1] now
-- (20 digits), ARGV[2] the record, ARGV[3] its TTL in ms. Returns 1 when stored, 0 otherwise.

local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
