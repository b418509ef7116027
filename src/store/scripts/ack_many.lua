-- After key.lua and deliver.lua. KEYS: inbox(to) and user_workers(sender) of each ack, in pairs.
-- ARGV: channel template, receipts head, receipt separator, then per ack its message id and
-- its receipt record (a receipts payload is head .. sep .. record [.. sep .. record …]; see
-- store::Delivery::Receipts).
-- Removes the acknowledged messages; each first ack's receipt goes to the workers that hold
-- its sender, all of this call's receipts for one worker in one PUBLISH. Returns how many
-- acks were first ones.
if #KEYS == 2 then
  -- One ack, the usual case below a few thousand per second: no tables to build.
  local n = redis.call('XDEL', KEYS[1], ARGV[4])
  if n == 1 then publish(KEYS[2], ARGV[1], ARGV[2] .. ARGV[3] .. ARGV[5]) end
  return n
end
local records, order, first = {}, {}, 0
for i = 1, #KEYS / 2 do
  local id, record = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  if redis.call('XDEL', KEYS[2 * i - 1], id) == 1 then
    first = first + 1
    add_for_each(KEYS[2 * i], records, order, record)
  end
end
for _, w in ipairs(order) do
  redis.call('PUBLISH', key(ARGV[1], w), ARGV[2] .. ARGV[3] .. table.concat(records[w], ARGV[3]))
end
return first
