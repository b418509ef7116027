-- After deliver.lua. Cluster layout (the room's slot). KEYS: history, room_workers.
-- ARGV: from, text, sent_at, max_len, history TTL (seconds).
-- Appends to the room's history like room_send.lua and returns {id, instances} for the
-- caller to SPUBLISH to.
local id = append(KEYS[1], ARGV[4], ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {id, redis.call('SMEMBERS', KEYS[2])}
