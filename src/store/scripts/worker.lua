-- Prelude of the scripts about a whole worker instance (heartbeat, resync, remove_worker).
-- KEYS[1] the workers SET, KEYS[2] the online ZSET.
-- ARGV[1] this instance; ARGV[2..6] key templates for any instance, user or room: its alive
-- key, its users, its rooms, a user's instances, a room's instances. The script's own
-- arguments start at ARGV[7].
local WORKERS, ONLINE, ME = KEYS[1], KEYS[2], ARGV[1]
local ALIVE, W_USERS, W_ROOMS, U_WORKERS, R_WORKERS = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

-- Registers this instance as live for ttl_ms; returns 1 when it was not registered.
local function refresh(ttl_ms)
  local fresh = redis.call('SADD', WORKERS, ME)
  redis.call('SET', key(ALIVE, ME), '1', 'PX', ttl_ms)
  return fresh
end

-- Removes every membership of instance w (its users from the user map and the online set,
-- its rooms) and the instance itself.
local function reap(w)
  local wu = key(W_USERS, w)
  for _, u in ipairs(redis.call('SMEMBERS', wu)) do
    local uw = key(U_WORKERS, u)
    redis.call('SREM', uw, w)
    if redis.call('SCARD', uw) == 0 then redis.call('ZREM', ONLINE, u) end
  end
  local wr = key(W_ROOMS, w)
  for _, r in ipairs(redis.call('SMEMBERS', wr)) do
    redis.call('SREM', key(R_WORKERS, r), w)
  end
  redis.call('DEL', wu, wr, key(ALIVE, w))
  redis.call('SREM', WORKERS, w)
end
