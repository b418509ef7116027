-- After worker.lua. ARGV[7] ttl_ms.
-- Refreshes this instance's liveness and reaps instances whose liveness expired (they died
-- without cleaning up). Returns {fresh, reaped}: fresh is 1 when this instance was not
-- registered (Redis restarted empty, or a peer reaped us after a stall).
local fresh = refresh(ARGV[7])
local reaped = 0
for _, w in ipairs(redis.call('SMEMBERS', WORKERS)) do
  if w ~= ME and redis.call('EXISTS', key(ALIVE, w)) == 0 then
    reap(w)
    reaped = reaped + 1
  end
end
return {fresh, reaped}
