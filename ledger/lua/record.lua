-- Record the outcomes of several attempts at once (a group commit: the
-- workers of a process share one round trip). Each attempt is 10 ARGV
-- entries from ARGV[5] on: id, batch, outcome letter (d n f r), code, msg,
-- http status, log id, now ms, queue, outcome name.
-- ARGV: 2 default ttl s, 3 default due offset ms, 4 default buckets.
-- Returns, per attempt, {transitions, attempts, completed batches joined by
-- spaces}, flattened.
--
-- The per-id work is a few commands (read the entry and the attempt count,
-- write the entry, and the failure record when there is one); what is per
-- batch (tallies, rate, progress, retention, completion) is done once per
-- batch and call.

local batches = {} -- batch name -> its metadata and the changes of this call

local function batchOf(b, now, queue)
  local info = batches[b]
  if info then
    return info
  end
  local meta = metaKey(b)
  local slot = math.floor(now / 10000)
  local slotIndex = slot % 6
  local m = redis.call('HMGET', meta, 'buckets', 'ttl', 'due', 'total', 'deleted', 'not_found', 'failed',
    'rs' .. slotIndex, 'rc' .. slotIndex)
  if not m[1] then
    -- A task whose batch was never opened (another producer) or expired
    -- still gets a batch, with the defaults.
    redis.call('HSET', meta, 'created', now, 'due', now + tonumber(ARGV[3]), 'note', '', 'callback', '',
      'ttl', ARGV[2], 'buckets', ARGV[4], 'total', 0, 'deleted', 0, 'not_found', 0, 'failed', 0,
      'completions', 0, 'complete', 0, 'queues', queue, 'progress_at', now)
    redis.call('ZADD', P .. 'batches', now, b)
    m = {ARGV[4], ARGV[2], now + tonumber(ARGV[3]), '0', '0', '0', '0', false, false}
  end
  info = {meta = meta, buckets = tonumber(m[1]), ttl = tonumber(m[2]), due = m[3], total = tonumber(m[4]),
    before = {deleted = tonumber(m[5]), not_found = tonumber(m[6]), failed = tonumber(m[7])},
    slot = slot, slotIndex = slotIndex, sameSlot = m[8] == tostring(slot), slotCount = tonumber(m[9]) or 0,
    deleted = 0, not_found = 0, failed = 0, added = 0, now = now}
  batches[b] = info
  return info
end

local fields = {d = 'deleted', n = 'not_found', f = 'failed'}

local function writeFailure(b, id, ttl, a, attempts)
  local fkey = failKey(b, id)
  redis.call('HSETNX', fkey, 'first_at', a.now)
  redis.call('HSET', fkey, 'batch', b, 'queue', a.queue, 'outcome', a.name, 'code', a.code, 'msg', a.msg,
    'http_status', a.status, 'logid', a.logid, 'last_at', a.now, 'attempts', attempts)
  redis.call('ZADD', P .. 'failures', a.now, failMember(b, id))
  redis.call('EXPIRE', fkey, ttl)
end

-- finish gives id its terminal outcome in batch b, whose entry is pending.
-- (The bucket's retention runs from when ids were added and from the
-- batch's completion, when every bucket gets it again.)
local function finish(b, info, key, id, a, value)
  redis.call('HSET', key, id, value)
  info[fields[a.letter]] = info[fields[a.letter]] + 1
  if a.now > info.now then
    info.now = a.now
  end
end

local alsoKey = P .. 'also'
local anyLinks = redis.call('EXISTS', alsoKey) == 1
local out = {}
local touched = {} -- attempt index -> batches it finished, for completion

for i = 5, #ARGV, 10 do
  local a = {id = ARGV[i], batch = ARGV[i + 1], letter = ARGV[i + 2], code = ARGV[i + 3], msg = ARGV[i + 4],
    status = ARGV[i + 5], logid = ARGV[i + 6], now = tonumber(ARGV[i + 7]), queue = ARGV[i + 8], name = ARGV[i + 9]}
  local id, B = a.id, a.batch
  local info = batchOf(B, a.now, a.queue)
  local key = idsKey(B, bucket(id, info.buckets))
  local cur = redis.call('HGET', key, id)
  local duplicate = cur and not isPending(cur) -- the batch has this id's outcome already: a duplicate run
  local transitions, attempts, done = 0, 0, {}
  if not (duplicate and a.letter == 'r') then
    if not cur then
      redis.call('HSET', key, id, 'p')
      redis.call('EXPIRE', key, info.ttl)
      info.added = info.added + 1
      cur = 'p'
    end
    local value
    if not duplicate then
      -- Only an id whose entry says so has a failure record to count
      -- attempts from (and to clear on deletion): the common case, a
      -- first attempt that deletes, reads and writes one entry.
      attempts = 1
      if cur == 'r' then
        attempts = tonumber(redis.call('HGET', failKey(B, id), 'attempts') or '0') + 1
      end
      if a.letter == 'd' then
        if cur == 'r' then
          redis.call('DEL', failKey(B, id))
          redis.call('ZREM', P .. 'failures', failMember(B, id))
        end
      else
        writeFailure(B, id, info.ttl, a, attempts)
      end
      if a.letter == 'r' then
        if cur == 'p' then
          redis.call('HSET', key, id, 'r')
        end
      else
        value = a.letter .. '|' .. a.code .. '|' .. a.logid .. '|' .. attempts .. '|' .. math.floor(a.now / 1000)
        finish(B, info, key, id, a, value)
        transitions = 1
        done[#done + 1] = B
      end
    end
    -- Other batches waiting for this id (it was enqueued into them while
    -- this task was already queued) get the same outcome, even from a
    -- duplicate run: a link made between two runs of a task is served by
    -- the second.
    if a.letter ~= 'r' and anyLinks then
      local also = redis.call('HGET', alsoKey, id)
      if also then
        value = value or (a.letter .. '|' .. a.code .. '|' .. a.logid .. '|1|' .. math.floor(a.now / 1000))
        for entry in string.gmatch(also, '%S+') do
          local b = string.match(entry, '^(.-)@')
          if b ~= B and redis.call('EXISTS', metaKey(b)) == 1 then
            local binfo = batchOf(b, a.now, a.queue)
            local bkey = idsKey(b, bucket(id, binfo.buckets))
            if isPending(redis.call('HGET', bkey, id)) then
              finish(b, binfo, bkey, id, a, value)
              transitions = transitions + 1
              done[#done + 1] = b
              if a.letter == 'd' then
                redis.call('DEL', failKey(b, id))
                redis.call('ZREM', P .. 'failures', failMember(b, id))
              else
                writeFailure(b, id, binfo.ttl, a, math.max(attempts, 1))
              end
            end
          end
        end
        redis.call('HDEL', alsoKey, id)
      end
    end
  end
  out[#out + 1] = transitions
  out[#out + 1] = attempts
  out[#out + 1] = ''
  touched[#out] = done
end

-- Per batch, once: the tallies, the rate and progress in one write (the
-- script runs alone, so the values read above are still current), the
-- retention when the rate's slot turns (every 10 s at most), completion.
local completedBy = {}
for b, info in pairs(batches) do
  local meta = info.meta
  local finished = info.deleted + info.not_found + info.failed
  if info.added > 0 then
    redis.call('ZADD', P .. 'batches:open', info.due, b)
  end
  if finished > 0 or info.added > 0 then
    local count = finished
    if info.sameSlot then
      count = count + info.slotCount
    end
    redis.call('HSET', meta, 'total', info.total + info.added,
      'deleted', info.before.deleted + info.deleted, 'not_found', info.before.not_found + info.not_found,
      'failed', info.before.failed + info.failed, 'rs' .. info.slotIndex, info.slot, 'rc' .. info.slotIndex, count,
      'progress_at', info.now)
    if info.added > 0 then
      redis.call('HSET', meta, 'complete', 0)
    end
  end
  if not info.sameSlot then
    redis.call('EXPIRE', meta, info.ttl)
  end
  local finishedBefore = info.before.deleted + info.before.not_found + info.before.failed
  if finished > 0 and finishedBefore + finished >= info.total + info.added and tryComplete(b, info.now) then
    completedBy[b] = true
  end
end

-- Report each completed batch with the last attempt that finished in it.
local reported = {}
for slotPos = #out, 3, -3 do
  local names = {}
  for _, b in ipairs(touched[slotPos] or {}) do
    if completedBy[b] and not reported[b] then
      reported[b] = true
      names[#names + 1] = b
    end
  end
  out[slotPos] = table.concat(names, ' ')
end
return out
