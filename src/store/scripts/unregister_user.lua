-- Cluster layout (the user's slot). KEYS: user_workers. ARGV: instance.
-- Drops the instance from the user map; returns how many instances still hold the user.
redis.call('SREM', KEYS[1], ARGV[1])
return redis.call('SCARD', KEYS[1])
