-- After key.lua and deliver.lua. KEYS: inbox, user_workers(to).
-- ARGV: from, text, sent_at, max_len, min_id, ttl_ms, channel template, payload head,
-- payload middle (the delivery is head .. id .. middle .. text; see store::Delivery).
-- Appends to the inbox (the message is safe before the sender's ack), trims by count and
-- age, and publishes the delivery to the workers that hold the recipient.
local id = append(KEYS[1], ARGV[4], ARGV[1], ARGV[2], ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
publish(KEYS[2], ARGV[7], ARGV[8] .. id .. ARGV[9] .. ARGV[2])
return id
