-- After worker.lua. ARGV[7] ttl_ms, ARGV[8] reset (1/0), ARGV[9] n_users, then n_users
-- users, then rooms. With reset, first drops everything registered for this instance; then
-- registers the given users and rooms.
if ARGV[8] == '1' then reap(ME) end
refresh(ARGV[7])
local n = tonumber(ARGV[9])
local my_users, my_rooms = key(W_USERS, ME), key(W_ROOMS, ME)
for i = 10, 9 + n do
  local u = ARGV[i]
  redis.call('SADD', key(U_WORKERS, u), ME)
  redis.call('SADD', my_users, u)
  redis.call('ZADD', ONLINE, 0, u)
end
for i = 10 + n, #ARGV do
  local r = ARGV[i]
  redis.call('SADD', key(R_WORKERS, r), ME)
  redis.call('SADD', my_rooms, r)
end
return n
