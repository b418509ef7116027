-- Prelude of the scripts that store and publish messages (send, ack, room_send).

-- Appends a message to a stream capped at max_len entries; returns its id. The field names
-- are the ones the store's entry decoder reads.
local function append(stream, max_len, from, text, sent_at)
  return redis.call('XADD', stream, 'MAXLEN', max_len, '*',
    'from', from, 'message', text, 'sentAt', sent_at)
end

-- Publishes payload on the delivery channel (a key template) of every instance in the SET
-- `instances`: only the workers that hold a recipient, never a broadcast.
local function publish(instances, channel, payload)
  for _, w in ipairs(redis.call('SMEMBERS', instances)) do
    redis.call('PUBLISH', key(channel, w), payload)
  end
end

-- For a call that publishes several payloads: appends `item` to the list of every instance in
-- the SET `instances` (lists[w], created on first use, and `order` keeps the instances in the
-- order they first appeared, so each gets its items in order in one PUBLISH).
local function add_for_each(instances, lists, order, item)
  for _, w in ipairs(redis.call('SMEMBERS', instances)) do
    local list = lists[w]
    if not list then
      list = {}
      lists[w] = list
      order[#order + 1] = w
    end
    list[#list + 1] = item
  end
end
