-- Move a finished id of a batch back to pending (failures retry); a data
-- subject's batch is then verified again before it completes again.
-- ARGV: 2 batch, 3 id, 4 letter the outcome must have (f or n), 5 now ms.
-- Returns 1 when reopened, -1 when the batch's session name was erased (a
-- new task could not act as it: nothing is changed).
local B, id = ARGV[2], ARGV[3]
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'buckets', 'due', 'ttl', 'session_hash')
if not m[1] then
  return 0
end
if m[4] then
  return -1
end
local key = idsKey(B, bucket(id, tonumber(m[1])))
local cur = redis.call('HGET', key, id)
if not cur or string.sub(cur, 1, 1) ~= ARGV[4] then
  return 0
end
redis.call('HSET', key, id, 'r') -- pending, with a failure record
redis.call('HINCRBY', meta, ({f = 'failed', n = 'not_found'})[ARGV[4]], -1)
redis.call('HSET', meta, 'complete', 0, 'progress_at', ARGV[5])
-- A data subject's batch verifies the id again; one that a verification
-- found still listed no longer counts as such until one finds it again.
if string.sub(cur, 1, 15) == 'f|still_listed|' then
  redis.call('HINCRBY', meta, 'still_listed', -1)
end
reverify(meta)
redis.call('ZADD', openBatchesKey, m[2], B)
redis.call('EXPIRE', key, m[3])
redis.call('EXPIRE', meta, m[3])
redis.call('EXPIRE', listingsKey(B), m[3]) -- the proof's listings live as long as the batch
local fkey = failKey(B, id)
if redis.call('EXISTS', fkey) == 1 then
  redis.call('HSET', fkey, 'outcome', 'retrying')
  redis.call('EXPIRE', fkey, m[3])
end
return 1
