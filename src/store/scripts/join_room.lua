-- Cluster layout (the room's slot). KEYS: room_workers, history. ARGV: me, count.
-- Registers this instance as holding members of the room; returns the newest history first.
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
