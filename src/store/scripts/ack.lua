-- After key.lua and deliver.lua. KEYS: inbox(to), user_workers(sender).
-- ARGV: id, channel template, the `delivered` payload.
-- Removes an acknowledged message; only the first ack publishes the receipt.
local n = redis.call('XDEL', KEYS[1], ARGV[1])
if n == 1 then publish(KEYS[2], ARGV[2], ARGV[3]) end
return n
