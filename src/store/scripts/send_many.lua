-- After key.lua and deliver.lua. KEYS: inbox(to) and user_workers(to) of each message, in
-- pairs. ARGV: max_len, ttl_ms, channel template, batch head, batch separator, then per
-- message: from, text, sent_at, payload head, payload middle (its delivery is
-- head .. id .. middle .. text; see store::Delivery).
-- Appends each message to its recipient's inbox (the message is safe before the sender's
-- ack), capped at max_len, and renews the inbox's TTL; then publishes once per worker
-- instance that holds a recipient: the delivery itself when it gets one, else a batch
-- payload of its deliveries in order (head, then each one's length, the separator and the
-- delivery). Returns the ids in order.
-- Entries older than the TTL are not trimmed here (one command less per message): the
-- inbox is read from the oldest id still young enough, and `log in` trims them (login.lua).
if #KEYS == 2 then
  -- One message, the usual case below a few thousand per second: no tables to build.
  local id = append(KEYS[1], ARGV[1], ARGV[6], ARGV[7], ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  publish(KEYS[2], ARGV[3], ARGV[9] .. id .. ARGV[10] .. ARGV[7])
  return {id}
end
local ids, out, order = {}, {}, {}
for i = 1, #KEYS / 2 do
  local a = 5 + 5 * (i - 1)
  local inbox, text = KEYS[2 * i - 1], ARGV[a + 2]
  local id = append(inbox, ARGV[1], ARGV[a + 1], text, ARGV[a + 3])
  redis.call('PEXPIRE', inbox, ARGV[2])
  ids[i] = id
  add_for_each(KEYS[2 * i], out, order, ARGV[a + 4] .. id .. ARGV[a + 5] .. text)
end
for _, w in ipairs(order) do
  local list, payload = out[w], nil
  if #list == 1 then
    payload = list[1]
  else
    local parts = {ARGV[4]}
    for _, p in ipairs(list) do
      parts[#parts + 1] = #p .. ARGV[5] .. p
    end
    payload = table.concat(parts)
  end
  redis.call('PUBLISH', key(ARGV[3], w), payload)
end
return ids
