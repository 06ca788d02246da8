-- Add ids to a batch as pending, unless they are members already, and
-- renew the adder's lease. A new member is 'p' and joins the end of the
-- batch's unfed list for the queue: its task is made when the queue has
-- room for it (feed.lua). Unless the ids are held, the batch joins the
-- queue's feed at the feed time (one already there keeps its place).
-- ARGV: 2 batch, 3 now ms, 4 adder id, 5 adder lease ms, 6 the ledger's
-- default ttl s (for a lost batch's record), 7 queue, 8 feed time ms (0:
-- held), 9 the tasks' asynq max retry, 10.. ids.
-- Returns one letter per id: n (new member), p (member, pending), t (member, finished).
local B = ARGV[2]
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'buckets', 'ttl', 'due', 'session_hash')
if not m[1] then
  -- The adder opened it, so it existed: Redis lost it.
  markLost(B, ARGV[3], '1', ARGV[6])
  return redis.error_reply('NOBATCH batch ' .. B .. ' does not exist')
end
if m[4] then
  -- It completed and its session name was erased since the adder opened
  -- it: a new id could only get a task of another identity.
  return redis.error_reply('SESSIONERASED batch ' .. B .. ' is complete and its session name was erased')
end
local n, ttl = tonumber(m[1]), tonumber(m[2])
local Q = ARGV[7]
local out, added, touched, fresh = {}, 0, {}, {}
for i = 10, #ARGV do
  local id = ARGV[i]
  local key = idsKey(B, bucket(id, n))
  -- HSETNX adds a new id in one command, the common case of a bulk
  -- enqueue; only a member already there is read.
  if redis.call('HSETNX', key, id, 'p') == 1 then
    touched[key] = true
    added = added + 1
    fresh[added] = id
    out[#out + 1] = 'n'
  elseif isPending(redis.call('HGET', key, id)) then
    out[#out + 1] = 'p'
  else
    out[#out + 1] = 't'
  end
end
for key in pairs(touched) do
  redis.call('EXPIRE', key, ttl)
end
local unfed = unfedKey(B, Q)
-- In slices: unpack has a limit on how many values it spreads.
for i = 1, added, 1000 do
  redis.call('RPUSH', unfed, unpack(fresh, i, math.min(i + 999, added)))
end
if added > 0 then
  redis.call('EXPIRE', unfed, ttl)
end
redis.call('HSET', meta, 'max_retry', ARGV[9])
if ARGV[8] ~= '0' and redis.call('EXISTS', unfed) == 1 then
  redis.call('ZADD', feedKey(Q), 'NX', ARGV[8], B)
  redis.call('SADD', feedsKey, Q)
end
if added > 0 then
  redis.call('HINCRBY', meta, 'total', added)
  redis.call('HSET', meta, 'complete', 0, 'progress_at', ARGV[3])
  redis.call('ZADD', openBatchesKey, m[3], B)
  reverify(meta)
end
redis.call('ZADD', addersKey(B), tonumber(ARGV[3]) + tonumber(ARGV[5]), ARGV[4])
redis.call('PEXPIRE', addersKey(B), tonumber(ARGV[5]) * 2)
redis.call('EXPIRE', meta, ttl)
bumpSeq()
return table.concat(out)
