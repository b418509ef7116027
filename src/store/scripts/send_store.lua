-- After deliver.lua. Cluster layout (the recipient's slot). KEYS: inbox, user_workers(to).
-- ARGV: from, text, sent_at, max_len, min_id, ttl_ms.
-- Appends to the inbox like send_many.lua (and trims it by age too), but returns
-- {id, instances} instead of publishing: the instances' channels live in other slots, so the
-- caller SPUBLISHes.
local id = append(KEYS[1], ARGV[4], ARGV[1], ARGV[2], ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {id, redis.call('SMEMBERS', KEYS[2])}
