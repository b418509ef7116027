-- After key.lua and deliver.lua. KEYS: inbox(to) and user_workers(to) of each message, in
-- pairs. ARGV: max_len, min_id, ttl_ms, channel template, batch head, batch separator, then
-- per message: from, text, sent_at, payload head, payload middle (its delivery is
-- head .. id .. middle .. text; see store::Delivery).
-- send.lua for several messages at once: appends each to its recipient's inbox (trimmed by
-- count and age), then publishes once per worker instance that holds a recipient: the
-- delivery itself when it gets one, else a batch payload of its deliveries in order
-- (head, then each one's length, the separator and the delivery). Returns the ids in order.
local ids, out, order = {}, {}, {}
for i = 1, #KEYS / 2 do
  local a = 6 + 5 * (i - 1)
  local inbox, text = KEYS[2 * i - 1], ARGV[a + 2]
  local id = append(inbox, ARGV[1], ARGV[a + 1], text, ARGV[a + 3])
  redis.call('XTRIM', inbox, 'MINID', ARGV[2])
  redis.call('PEXPIRE', inbox, ARGV[3])
  ids[i] = id
  local payload = ARGV[a + 4] .. id .. ARGV[a + 5] .. text
  for _, w in ipairs(redis.call('SMEMBERS', KEYS[2 * i])) do
    local list = out[w]
    if not list then
      list = {}
      out[w] = list
      order[#order + 1] = w
    end
    list[#list + 1] = payload
  end
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
