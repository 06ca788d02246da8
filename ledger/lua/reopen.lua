-- Move a finished id of a batch back to pending (failures retry).
-- ARGV: 2 batch, 3 id, 4 letter the outcome must have (f or n).
-- Returns 1 when reopened.
local B, id = ARGV[2], ARGV[3]
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'buckets', 'due')
if not m[1] then
  return 0
end
local key = idsKey(B, bucket(id, tonumber(m[1])))
local cur = redis.call('HGET', key, id)
if not cur or string.sub(cur, 1, 1) ~= ARGV[4] then
  return 0
end
redis.call('HSET', key, id, 'p')
redis.call('HINCRBY', meta, ({f = 'failed', n = 'not_found'})[ARGV[4]], -1)
redis.call('ZADD', P .. 'batches:open', m[2], B)
local fkey = failKey(B, id)
if redis.call('EXISTS', fkey) == 1 then
  redis.call('HSET', fkey, 'outcome', 'retrying')
end
return 1
