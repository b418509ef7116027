-- After key.lua and deliver.lua. KEYS: history, room_workers.
-- ARGV: from, text, sent_at, max_len, channel template, payload head, payload middle,
-- history TTL (seconds).
-- Appends to the room's history (its TTL renewed) and publishes to the room's workers.
local id = append(KEYS[1], ARGV[4], ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[8])
publish(KEYS[2], ARGV[5], ARGV[6] .. id .. ARGV[7] .. ARGV[2])
return id
