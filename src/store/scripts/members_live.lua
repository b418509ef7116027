-- KEYS: members (ZSET scored by expiry), member_info (HASH). ARGV: now_ms.
-- Prunes expired members, then returns the live ones as a flat list of key, info (info is
-- false when the hash lacks it), in one round trip.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
end
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m)
end
return out
