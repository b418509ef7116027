-- KEYS: user_workers, worker_users, online, inbox. ARGV: user, me, min_id, count.
-- Registers the user on this instance, trims expired messages and returns the pending ones,
-- atomically, so nothing sent after this can be missed by both the list and the channel.
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('XTRIM', KEYS[4], 'MINID', ARGV[3])
return redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', ARGV[4])
