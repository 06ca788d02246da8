-- Add ids to a batch as pending, unless they are members already, and
-- renew the adder's lease.
-- ARGV: 2 batch, 3 now ms, 4 adder id, 5 adder lease ms, 6 the ledger's
-- default ttl s (for a lost batch's record), 7.. ids.
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
local out, added, touched = {}, 0, {}
for i = 7, #ARGV do
  local id = ARGV[i]
  local key = idsKey(B, bucket(id, n))
  -- HSETNX adds a new id in one command, the common case of a bulk
  -- enqueue; only a member already there is read.
  if redis.call('HSETNX', key, id, 'p') == 1 then
    touched[key] = true
    added = added + 1
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
