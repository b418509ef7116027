-- KEYS: room_workers, worker_rooms, history. ARGV: room, me, count.
-- Registers this instance as holding members of the room; returns the newest history first.
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', ARGV[3])
