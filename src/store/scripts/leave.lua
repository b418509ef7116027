-- KEYS: room_workers, worker_rooms. ARGV: room, me. The room's last local member left.
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
