-- Record one attempt's outcome for a conversation.
-- ARGV: 2 id, 3 batch, 4 outcome letter (d n f r), 5 code, 6 msg, 7 http status,
--       8 log id, 9 now ms, 10 queue, 11 outcome name, 12 default ttl s,
--       13 default due offset ms, 14 default buckets.
-- Returns {transitions, attempts, completed batches joined by spaces}.
local id, B, letter, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[9])

-- A task whose batch was never opened (another producer) or has expired
-- still gets a batch, with the defaults.
local meta = metaKey(B)
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'created', ARGV[9], 'due', now + tonumber(ARGV[13]), 'note', '', 'callback', '',
    'ttl', ARGV[12], 'buckets', ARGV[14], 'total', 0, 'deleted', 0, 'not_found', 0, 'failed', 0,
    'completions', 0, 'complete', 0, 'queues', ARGV[10], 'progress_at', ARGV[9])
  redis.call('ZADD', P .. 'batches', ARGV[9], B)
end
local m = redis.call('HMGET', meta, 'buckets', 'ttl', 'due')
local ttl = tonumber(m[2])
local key = idsKey(B, bucket(id, tonumber(m[1])))
local cur = redis.call('HGET', key, id)
local duplicate = cur and cur ~= 'p' -- the batch has this id's outcome already: a duplicate run
if duplicate and letter == 'r' then
  return {0, 0, ''}
end
if not cur then
  redis.call('HSET', key, id, 'p')
  redis.call('HINCRBY', meta, 'total', 1)
  redis.call('HSET', meta, 'complete', 0)
  redis.call('ZADD', P .. 'batches:open', m[3], B)
end

local function writeFailure(b, fkey, attemptsValue, ttlValue)
  redis.call('HSETNX', fkey, 'first_at', ARGV[9])
  redis.call('HSET', fkey, 'batch', b, 'queue', ARGV[10], 'outcome', ARGV[11], 'code', ARGV[5], 'msg', ARGV[6],
    'http_status', ARGV[7], 'logid', ARGV[8], 'last_at', ARGV[9], 'attempts', attemptsValue)
  redis.call('ZADD', P .. 'failures', ARGV[9], failMember(b, id))
  redis.call('EXPIRE', fkey, ttlValue)
end

local fkey = failKey(B, id)
local attempts = 0
if not duplicate then
  attempts = tonumber(redis.call('HGET', fkey, 'attempts') or '0') + 1
  if letter == 'd' then
    redis.call('DEL', fkey)
    redis.call('ZREM', P .. 'failures', failMember(B, id))
  else
    writeFailure(B, fkey, attempts, ttl)
  end
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', meta, ttl)
  if letter == 'r' then
    return {0, attempts, ''}
  end
end

local value = letter .. '|' .. ARGV[5] .. '|' .. ARGV[8] .. '|' .. math.max(attempts, 1) .. '|' .. math.floor(now / 1000)
local field = ({d = 'deleted', n = 'not_found', f = 'failed'})[letter]
local slot = math.floor(now / 10000)
local slotIndex = slot % 6
local transitions, completed = 0, {}

local function finish(b, bkey, bmeta, bttl)
  redis.call('HSET', bkey, id, value)
  redis.call('HINCRBY', bmeta, field, 1)
  if redis.call('HGET', bmeta, 'rs' .. slotIndex) == tostring(slot) then
    redis.call('HINCRBY', bmeta, 'rc' .. slotIndex, 1)
  else
    redis.call('HSET', bmeta, 'rs' .. slotIndex, slot, 'rc' .. slotIndex, 1)
  end
  redis.call('HSET', bmeta, 'progress_at', ARGV[9])
  redis.call('EXPIRE', bkey, bttl)
  redis.call('EXPIRE', bmeta, bttl)
  transitions = transitions + 1
  if tryComplete(b, now) then
    completed[#completed + 1] = b
  end
end

if not duplicate then
  finish(B, key, meta, ttl)
end

-- Other batches waiting for this id (it was enqueued into them while this
-- task was already queued) get the same outcome, even from a duplicate run:
-- a link made between two runs of a task is served by the second.
local alsoKey = P .. 'also'
local also = redis.call('HGET', alsoKey, id)
if also then
  for entry in string.gmatch(also, '%S+') do
    local b = string.match(entry, '^(.-)@')
    local bmeta = metaKey(b)
    local bm = redis.call('HMGET', bmeta, 'buckets', 'ttl')
    if b ~= B and bm[1] then
      local bkey = idsKey(b, bucket(id, tonumber(bm[1])))
      if redis.call('HGET', bkey, id) == 'p' then
        finish(b, bkey, bmeta, tonumber(bm[2]))
        if letter == 'd' then
          redis.call('DEL', failKey(b, id))
          redis.call('ZREM', P .. 'failures', failMember(b, id))
        else
          writeFailure(b, failKey(b, id), math.max(attempts, 1), tonumber(bm[2]))
        end
      end
    end
  end
  redis.call('HDEL', alsoKey, id)
end
return {transitions, attempts, table.concat(completed, ' ')}
