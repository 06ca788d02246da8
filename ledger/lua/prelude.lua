-- Shared by every ledger script, after the key layout (internal/keyspace's
-- Lua: P, the key builders, bucket) and asynq's (internal/asynqwire's Lua:
-- asynqTaskKey, liveTaskQueue). ARGV[1] is always the key prefix.
-- A batch that Redis lost (restarted empty, flushed) is never created anew
-- by a late record: the outcome goes to lostKey(b), and the batch to the
-- lost index, which status and /readyz read.
-- stillLost reports whether batch b is marked lost and was not opened
-- since: while Redis lacks it, or holds data older than the loss, its
-- records are not the whole story until its input is enqueued again.
local function stillLost(b)
  if not redis.call('ZSCORE', lostIndex, b) then
    return false
  end
  local opens = tonumber(redis.call('HGET', metaKey(b), 'opens') or '0')
  return opens <= tonumber(redis.call('HGET', lostKey(b), '_opens') or '0')
end
-- markLost puts batch b in the lost index at nowMs, unless it is lost
-- already (a loss that its batch's reopening ended is replaced), and notes
-- how often it had been opened (a later open ends the loss) and whether it
-- had work pending ('1') or was complete ('0').
local function markLost(b, nowMs, wasOpen, ttl)
  if stillLost(b) then
    return 0
  end
  local key = lostKey(b)
  redis.call('DEL', key)
  redis.call('ZADD', lostIndex, nowMs, b)
  redis.call('HSET', key, '_opens', redis.call('HGET', metaKey(b), 'opens') or '0', '_open', wasOpen)
  redis.call('EXPIRE', key, ttl)
  return 1
end

-- A pending id's entry is 'p' (added; its task is to be made, from the
-- batch's unfed list, by feed.lua), 'q' once feed.lua made its task, or
-- 'r' once an attempt failed (it then has a failure record); a finished
-- id's is 'outcome|code|logid|attempts|time'. (Batches enqueued before
-- feeding have 'p' ids whose tasks were written with them.)
local function isPending(v) return v == 'p' or v == 'q' or v == 'r' end

-- addLink makes the live task of id, in queue q, also record its outcome in
-- batch b: an entry 'b@q' in the id's field of alsoKey, added once.
local function addLink(id, b, q)
  local entry = b .. '@' .. q
  local cur = redis.call('HGET', alsoKey, id)
  if not cur then
    redis.call('HSET', alsoKey, id, entry)
  elseif not string.find(' ' .. cur .. ' ', ' ' .. entry .. ' ', 1, true) then
    redis.call('HSET', alsoKey, id, cur .. ' ' .. entry)
  end
end

-- leaveFeeds drops batch b's unfed lists and takes it out of its queues'
-- feeds: none of its ids will get a task from them any more.
local function leaveFeeds(b)
  for q in string.gmatch(redis.call('HGET', metaKey(b), 'queues') or 'default', '%S+') do
    redis.call('DEL', unfedKey(b, q))
    redis.call('ZREM', feedKey(q), b)
  end
end

-- bumpSeq counts the ledger's writes: a Redis that comes back with a lower
-- count came back with older data (see ledger.LossDetector).
local function bumpSeq() redis.call('INCR', seqKey) end

-- reverify puts the verification of a data subject's batch whose ids
-- change (reopened, or new ones added) back to pending, so that the batch
-- is verified again before it completes again; the rounds run are kept.
local function reverify(meta)
  local v = redis.call('HGET', meta, 'verification')
  if v == 'passed' or v == 'failed' then
    redis.call('HSET', meta, 'verification', 'pending')
    redis.call('HDEL', meta, 'unverified', 'verification_reason', 'verified_at')
  end
end

-- requestVerification puts the next round of batch b's verification in the
-- verification outbox, once per round: every call of tryComplete (each
-- janitor sweep) would ask again while the round runs.
local function requestVerification(b, meta, rounds, requested)
  local round = rounds + 1
  if requested < round then
    redis.call('SADD', verifyKey, verifyMember(b, string.format('%d', round)))
    redis.call('HSET', meta, 'verify_requested', round)
  end
end

-- tryComplete completes batch b when nothing is pending, nothing is being
-- added to it, and it is not complete already (a batch of no id completes
-- only when its input was refused, to tell its requester so: 'invalid' > 0,
-- set by seal.lua before it calls this): it records the completion,
-- leaves the open index, queues a callback with the tallies of this moment,
-- and starts the retention clock on every key of the batch.
-- A data subject's batch ('verify' 1) whose verification is pending does not
-- complete: its next verification round goes to the verification outbox,
-- and ledger.FinishVerification completes it. (It needs no id: a subject
-- whose discovery found nothing is verified too.)
local function tryComplete(b, nowMs)
  local meta = metaKey(b)
  local t = redis.call('HMGET', meta, 'total', 'deleted', 'not_found', 'failed', 'callback', 'complete', 'ttl', 'buckets',
    'invalid', 'verify', 'verification', 'verify_round', 'verify_requested', 'cancelled', 'control')
  local total = tonumber(t[1]) or 0
  local verify = t[10] == '1'
  local empty = total == 0 and (tonumber(t[9]) or 0) == 0 and not verify
  -- Cancelled ids (ledger.Ledger.Cancel) are finished too.
  if empty or t[6] == '1' or total ~= tonumber(t[2]) + tonumber(t[3]) + tonumber(t[4]) + (tonumber(t[14]) or 0) then
    return false
  end
  if redis.call('ZCOUNT', addersKey(b), '(' .. nowMs, '+inf') > 0 then
    return false -- ids are still being added
  end
  if stillLost(b) then
    return false -- what is left is not the batch: no completion, no callback
  end
  if verify and t[11] == 'pending' and t[15] ~= 'cancelled' then -- a cancelled erasure is not verified
    requestVerification(b, meta, tonumber(t[12]) or 0, tonumber(t[13]) or 0)
    return false
  end
  redis.call('HSET', meta, 'complete', 1, 'completed_at', nowMs)
  local c = redis.call('HINCRBY', meta, 'completions', 1)
  redis.call('ZREM', openBatchesKey, b)
  -- What is left in its unfed lists finished by other means (a task of
  -- another batch, linked): the feed has nothing to make for it.
  leaveFeeds(b)
  if t[5] and t[5] ~= '' then
    local member = {b, c, t[1], t[2], t[3], t[4], nowMs}
    if (tonumber(t[14]) or 0) > 0 then
      member[8] = t[14] -- cancelled ids, only when there are (older readers take 7 fields)
    end
    redis.call('SADD', callbacksKey, table.concat(member, '/'))
  end
  local ttl = tonumber(t[7])
  redis.call('EXPIRE', meta, ttl)
  for k = 0, tonumber(t[8]) - 1 do
    redis.call('EXPIRE', idsKey(b, k), ttl)
  end
  redis.call('EXPIRE', listingsKey(b), ttl)
  redis.call('EXPIRE', historyKey(b), ttl)
  return true
end
