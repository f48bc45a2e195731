-- advance: stores a number unless a live record holds an equal or greater one. KEYS[1] the
-- record's key. ARGV[1] now (20 digits), ARGV[2] the record, ARGV[3] the number (20 digits),
-- ARGV[4] the TTL in ms. Returns 1 when stored, 0 when a live record holds an equal or greater
-- number, -1 when the live record holds bytes.

local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  if string.sub(cur, 22) >= ARGV[3] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
return 1
