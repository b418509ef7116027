-- Cluster layout (one slot: the user's). KEYS: user_workers, inbox. ARGV: me, min_id, count.
-- Registers this instance in the user map, trims expired messages and returns the pending
-- ones, atomically with respect to send_store.lua, which writes the same two keys: a message
-- is either in the returned list or published to an instance this script registered.
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])
return redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3])
