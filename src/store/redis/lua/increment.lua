-- increment: counts one more under the key, or starts a count at 1 when no live record is there (a
-- count saturates at 2^53 - 1). KEYS[1] the record's key. ARGV[1] now (20 digits), ARGV[2]
-- expires_at (20 digits), ARGV[3] the TTL in ms. Returns the new count, or -1 when the live record
-- holds bytes.

local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 20) > ARGV[1] then
  if string.sub(cur, 21, 21) ~= 'n' then
    return -1
  end
  local n = tonumber(string.sub(cur, 22))
  if n == nil then
    return -1
  end
  if n < 9007199254740991 then
    n = n + 1
  end
  redis.call('SET', KEYS[1], string.sub(cur, 1, 21) .. string.format('%020d', n), 'KEEPTTL')
  return n
end
redis.call('SET', KEYS[1], ARGV[2] .. 'n' .. string.format('%020d', 1), 'PX', ARGV[3])
return 1
