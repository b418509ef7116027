-- KEYS: user_workers, worker_users, online. ARGV: user, me.
-- The user's last socket on this instance left.
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
