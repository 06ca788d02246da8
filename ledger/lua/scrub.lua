-- Erase the session name of a complete batch: keep its keyed hash instead,
-- and take the batch out of the sessions index. A batch that no longer
-- exists, or holds no session name, leaves the index too; one that is not
-- complete (ids pending, reopened, being added to) keeps its name.
-- ARGV: 2 batch, 3 the batch's instance id when its name was read (another
-- instance of the same name is left for the next call), 4 the hash
-- ("hmac-sha256:..." of the name that instance holds), 5 now ms.
-- Returns 1 when it erased the name, 0 otherwise.
local B = ARGV[2]
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'complete', 'instance', 'session')
if redis.call('EXISTS', meta) == 0 or not m[3] then
  redis.call('SREM', sessionsKey, B)
  return 0
end
if m[1] ~= '1' or m[2] ~= ARGV[3] or ARGV[4] == '' then
  return 0
end
-- A producer still adding ids (its lease running) may add more as the
-- session: the name stays until it is done.
if redis.call('ZCOUNT', addersKey(B), '(' .. ARGV[5], '+inf') > 0 then
  return 0
end
redis.call('HSET', meta, 'session_hash', ARGV[4])
redis.call('HDEL', meta, 'session')
redis.call('SREM', sessionsKey, B)
bumpSeq()
return 1
