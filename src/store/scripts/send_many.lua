-- After key.lua and deliver.lua. KEYS: inbox(to) and user_workers(to) of each message, in
-- pairs. ARGV: max_len, min_id, ttl_ms, channel template, batch head, batch separator, then
-- per message: from, text, sent_at, payload head, payload middle (its delivery is
-- head .. id .. middle .. text; see store::Delivery).
-- Appends each message to its recipient's inbox (the message is safe before the sender's
-- ack), trims it by count and age (SPEC §3: at most inbox_max messages for at most
-- inbox_ttl) and renews its TTL; then publishes once per worker instance that holds a
-- recipient: the delivery itself when it gets one, else a batch payload of its deliveries in
-- order (head, then each one's length, the separator and the delivery). Returns the ids in
-- order.
if #KEYS == 2 then
  -- One message, the usual case below a few thousand per second: no tables to build.
  local id = append(KEYS[1], ARGV[1], ARGV[7], ARGV[8], ARGV[9])
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  publish(KEYS[2], ARGV[4], ARGV[10] .. id .. ARGV[11] .. ARGV[8])
  return {id}
end
local ids, out, order = {}, {}, {}
for i = 1, #KEYS / 2 do
  local a = 6 + 5 * (i - 1)
  local inbox, text = KEYS[2 * i - 1], ARGV[a + 2]
  local id = append(inbox, ARGV[1], ARGV[a + 1], text, ARGV[a + 3])
  redis.call('XTRIM', inbox, 'MINID', ARGV[2])
  redis.call('PEXPIRE', inbox, ARGV[3])
  ids[i] = id
  add_for_each(KEYS[2 * i], out, order, ARGV[a + 4] .. id .. ARGV[a + 5] .. text)
end
for _, w in ipairs(order) do
  local list, payload = out[w], nil
  if #list == 1 then
    payload = list[1]
  else
    local parts = {ARGV[5]}
    for _, p in ipairs(list) do
      parts[#parts + 1] = #p .. ARGV[6] .. p
    end
    payload = table.concat(parts)
  end
  redis.call('PUBLISH', key(ARGV[4], w), payload)
end
return ids
