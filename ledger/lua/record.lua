-- Record the outcomes of several attempts at once (a group commit: the
-- workers of a process share one round trip). Each attempt is 7 ARGV
-- entries from ARGV[6] on: id, batch, outcome letter (d n f r), code, log id,
-- now ms, queue; and then, for an outcome other than d (deleted, which
-- writes no failure record), 3 more: msg, http status, outcome name.
-- ARGV: 2 default ttl s, 3 default due offset ms, 4 default buckets, 5 what
-- a deletion's task id has before the conversation id ("del:").
-- Returns, flattened, {attempt (1 for the first), transitions, attempts,
-- completed batches joined by spaces} for each attempt whose result is not
-- the common one, which the others had: 1 transition, the first attempt,
-- completing no batch. (Most attempts have it: the reply stays short.) An
-- attempt whose batch is lost is reported with attempts -1.
--
-- A batch that does not exist is created by its task's record only while
-- that task exists and the batch was never found lost: a producer that
-- wrote tasks without opening a batch.
-- If the task is gone too, Redis lost both (it restarted empty, or was
-- flushed) while the task ran: creating the batch again would make a proof
-- of erasure out of the few ids still in flight. The outcome is kept in
-- the batch's lost record instead.
--
-- The per-id work is a few commands (read the entry and the attempt count,
-- write the entry, and the failure record when there is one); what is per
-- batch (tallies, rate, progress, retention, completion) is done once per
-- batch and call.
--
-- This script runs for every id a worker records, so it is written for
-- Redis's CPU. Besides the commands themselves, what costs is:
-- * Turning numbers into text. redis.call formats a Lua number argument with
--   %.17g, and `..` formats one with %.14g, both through libc's
--   floating-point printf: each costs about as much as a whole HGET. So
--   numbers that came in as text (ARGV, HMGET replies) are passed on as that
--   text, and new ones are made by int() (%d, several times cheaper); all
--   are integers far below 2^53, so the text is the same. The other way,
--   text + 0 converts with one strtod where tonumber(text) runs two; it is
--   used only on integers Go wrote, never on an id's digits (the embedded
--   Redis's Lua reads a leading zero as octal).
-- * Arguments and results, which Redis parses and converts one by one: a
--   deletion leaves out the failure fields, and the reply lists only the
--   attempts whose result is not the common one.
-- * Tables, closures and strings, which the garbage collector pays for
--   again: the common attempt (a first attempt that deletes a pending id)
--   reads its ARGV into locals and builds no table.

local call = redis.call
local format, sub = string.format, string.sub

-- int formats an integer as redis.call and `..` would, without the
-- floating-point printf.
local function int(n) return format('%d', n) end

local batches = {} -- batch name -> its metadata and the changes of this call

-- batchOf reads batch b's metadata, once per call; now and nowMs (its text)
-- are those of the first attempt that touches b.
local function batchOf(b, now, nowMs, queue, id)
  local meta = metaKey(b)
  local slot = math.floor(now / 10000)
  local slotIndex = slot % 6
  local rs, rc = format('rs%d', slotIndex), format('rc%d', slotIndex) -- the rate's fields for the slot
  local m = call('HMGET', meta, 'buckets', 'ttl', 'total', 'deleted', 'not_found', 'failed', rs, rc, 'cancelled')
  local due -- read when needed: only when ids join the batch
  if not m[1] then
    if call('EXISTS', asynqTaskPrefix(queue) .. ARGV[5] .. id) == 0 or stillLost(b) then
      return nil -- lost with its task, or lost before: see the top of this file
    end
    -- A task whose batch was never opened (another producer) gets a
    -- batch, with the defaults.
    call('HSET', meta, 'created', now, 'due', now + tonumber(ARGV[3]), 'note', '', 'callback', '',
      'ttl', ARGV[2], 'buckets', ARGV[4], 'total', 0, 'deleted', 0, 'not_found', 0, 'failed', 0,
      'completions', 0, 'complete', 0, 'queues', queue, 'progress_at', now, 'instance', 'task:' .. id .. ':' .. nowMs)
    call('ZADD', batchesKey, now, b)
    m = {ARGV[4], ARGV[2], '0', '0', '0', '0', false, false, false}
    due = now + tonumber(ARGV[3])
  end
  -- The tallies (m[3] to m[6]) stay text until the end of the call.
  local info = {name = b, meta = meta, buckets = m[1] + 0, ttl = m[2], due = due, m = m,
    slot = slot, rs = rs, rc = rc, sameSlot = m[7] and m[7] + 0 == slot, slotCount = m[8] and m[8] + 0 or 0,
    deleted = 0, not_found = 0, failed = 0, added = 0, now = now, nowMs = nowMs,
    idsPrefix = idsKey(b, '')}
  batches[b] = info
  return info
end

-- idsKeyOf is the prelude's idsKey(b, bucket(id, n)) for batch info's b,
-- with the key's head built once per batch.
local function idsKeyOf(info, id)
  return info.idsPrefix .. int(bucket(id, info.buckets))
end

-- entryOf is a finished id's entry, 'outcome|code|logid|attempts|time', for
-- the attempt at ARGV[i]; attempts is text. The time is in seconds: the
-- ms text (an integer from Go) less its last three digits.
local function entryOf(i, letter, attempts, now, nowMs)
  local secs
  if now >= 1000 then
    secs = sub(nowMs, 1, -4)
  else
    secs = int(math.floor(now / 1000))
  end
  return letter .. '|' .. ARGV[i + 3] .. '|' .. ARGV[i + 4] .. '|' .. attempts .. '|' .. secs
end

-- writeFailure writes the failure record of id in batch b from the attempt
-- at ARGV[i]; attempts is text.
local function writeFailure(b, id, ttl, i, attempts)
  local fkey = failKey(b, id)
  local nowMs = ARGV[i + 5]
  call('HSETNX', fkey, 'first_at', nowMs)
  call('HSET', fkey, 'batch', b, 'queue', ARGV[i + 6], 'outcome', ARGV[i + 9], 'code', ARGV[i + 3],
    'msg', ARGV[i + 7], 'http_status', ARGV[i + 8], 'logid', ARGV[i + 4], 'last_at', nowMs, 'attempts', attempts)
  call('ZADD', failuresKey, nowMs, failMember(b, id))
  call('EXPIRE', fkey, ttl)
end

local function clearFailure(b, id)
  call('DEL', failKey(b, id))
  call('ZREM', failuresKey, failMember(b, id))
end

-- recordLost keeps the attempt at ARGV[i] of id in lost batch b's record:
-- its outcome entry, or 'r' for a retrying attempt that has none yet.
local function recordLost(b, id, letter, i, now, nowMs)
  markLost(b, nowMs, '1', ARGV[2])
  local key = lostKey(b)
  if letter == 'r' then
    call('HSETNX', key, id, 'r')
  else
    call('HSET', key, id, entryOf(i, letter, '1', now, nowMs))
  end
  call('EXPIRE', key, ARGV[2])
end

local tally = {d = 'deleted', n = 'not_found', f = 'failed'}
local finishes = 0 -- counts finish calls, to order the batches one attempt completes

-- finish gives id its terminal outcome, by attempt k, in the batch of info,
-- where its entry (at key) is pending. (The bucket's retention runs from
-- when ids were added and from the batch's completion, when every bucket
-- gets it again.)
local function finish(info, key, id, letter, value, now, nowMs, k)
  call('HSET', key, id, value)
  local field = tally[letter]
  info[field] = info[field] + 1
  if now > info.now then
    info.now, info.nowMs = now, nowMs
  end
  finishes = finishes + 1
  info.lastAttempt, info.lastFinish = k, finishes
end

local anyLinks = call('EXISTS', alsoKey) == 1

-- identityOf is batch b's identity, one string to compare: its profile
-- and its session (the name while it is held, its hash once erased). Only
-- a deletion proves anything for a linked batch of another identity: a
-- "not found" or a failure answered to one identity says nothing of what
-- another may delete (Coze answers "not found" to whoever did not create
-- the conversation).
local function identityOf(b)
  local m = call('HMGET', metaKey(b), 'profile', 'session', 'session_hash')
  local session = ''
  if m[2] then
    session = 's:' .. m[2]
  elseif m[3] then
    session = 'h:' .. m[3]
  end
  return (m[1] or 'default') .. '\0' .. session
end
local out, n = {}, 0
local reported = {} -- attempt -> its completed batches' place in out

local i, k = 6, 0
while i <= #ARGV do
  k = k + 1
  local id, B, letter, nowMs = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 5]
  local now = nowMs + 0 -- tonumber(nowMs), with one strtod
  local info = batches[B] or batchOf(B, now, nowMs, ARGV[i + 6], id)
  if not info then
    recordLost(B, id, letter, i, now, nowMs)
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = k, 0, -1, ''
    n = n + 4
  else
    local key = idsKeyOf(info, id)
    local cur = call('HGET', key, id)
    local duplicate = cur and not isPending(cur) -- the batch has this id's outcome already: a duplicate run
    local transitions, attempts = 0, 0
    if not (duplicate and letter == 'r') then
      local joins = not cur
      if joins then
        -- Not in the batch: it joins it now. Its entry is written below
        -- (the outcome, or 'r'), in one write instead of 'p' and then that.
        info.added = info.added + 1
        cur = 'p'
      end
      local value
      if not duplicate then
        -- Only an id whose entry says so has a failure record to count
        -- attempts from (and to clear on deletion): the common case, a
        -- first attempt that deletes, reads and writes one entry.
        attempts = 1
        local attemptsText = '1'
        if cur == 'r' then
          attempts = tonumber(call('HGET', failKey(B, id), 'attempts') or '0') + 1
          attemptsText = int(attempts)
        end
        if letter == 'd' then
          if cur == 'r' then
            clearFailure(B, id)
          end
        else
          writeFailure(B, id, info.ttl, i, attemptsText)
        end
        if letter == 'r' then
          if cur == 'p' or cur == 'q' then
            call('HSET', key, id, 'r')
          end
        else
          value = entryOf(i, letter, attemptsText, now, nowMs)
          finish(info, key, id, letter, value, now, nowMs, k)
          transitions = 1
        end
      end
      if joins then
        call('EXPIRE', key, info.ttl) -- after the write: the key may be new
      end
      -- Other batches waiting for this id (it was enqueued into them while
      -- this task was already queued) get the same outcome, even from a
      -- duplicate run: a link made between two runs of a task is served by
      -- the second.
      if letter ~= 'r' and anyLinks then
        local also = call('HGET', alsoKey, id)
        if also then
          local linkAttempts = attempts > 1 and int(attempts) or '1'
          value = value or entryOf(i, letter, '1', now, nowMs)
          local mine, waiting = nil, {}
          for entry in string.gmatch(also, '%S+') do
            local b = string.match(entry, '^(.-)@')
            local exists = b ~= B and call('EXISTS', metaKey(b)) == 1
            local served = true
            if exists and letter ~= 'd' then
              mine = mine or identityOf(B)
              served = identityOf(b) == mine
            end
            if not served then
              -- Another identity's batch: the id stays pending there,
              -- and linked, so that the janitor queues it a task of its
              -- own once this one is gone.
              waiting[#waiting + 1] = entry
            elseif exists then
              local binfo = batches[b] or batchOf(b, now, nowMs, ARGV[i + 6], id)
              local bkey = idsKeyOf(binfo, id)
              if isPending(call('HGET', bkey, id)) then
                finish(binfo, bkey, id, letter, value, now, nowMs, k)
                transitions = transitions + 1
                if letter == 'd' then
                  clearFailure(b, id)
                else
                  writeFailure(b, id, binfo.ttl, i, linkAttempts)
                end
              end
            end
          end
          if #waiting > 0 then
            call('HSET', alsoKey, id, table.concat(waiting, ' '))
          else
            call('HDEL', alsoKey, id)
          end
        end
      end
    end
    if transitions ~= 1 or attempts ~= 1 then
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = k, transitions, attempts, ''
      n = n + 4
      reported[k] = n
    end
  end -- of a batch that exists
  i = i + (letter == 'd' and 7 or 10)
end

-- Per batch, once: the tallies, the rate and progress in one write of the
-- fields that change (the script runs alone, so the values read above are
-- still current), the retention when the rate's slot turns (every 10 s at
-- most), completion.
local completed = {}
for b, info in pairs(batches) do
  local finished = info.deleted + info.not_found + info.failed
  local added = info.added
  if added > 0 then
    call('ZADD', openBatchesKey, info.due or call('HGET', info.meta, 'due'), b)
  end
  local allFinished = false
  if finished > 0 or added > 0 then
    local m = info.m
    local total, deleted, notFound, failed = m[3] + added, m[4] + info.deleted, m[5] + info.not_found,
      m[6] + info.failed
    local count = finished
    if info.sameSlot then
      count = count + info.slotCount
    end
    local args = {'HSET', info.meta}
    local function set(field, value)
      args[#args + 1] = field
      args[#args + 1] = value
    end
    if added > 0 then
      set('total', int(total))
    end
    if info.deleted > 0 then
      set('deleted', int(deleted))
    end
    if info.not_found > 0 then
      set('not_found', int(notFound))
    end
    if info.failed > 0 then
      set('failed', int(failed))
    end
    if not info.sameSlot then
      set(info.rs, int(info.slot))
    end
    set(info.rc, int(count))
    set('progress_at', info.nowMs)
    if added > 0 then
      set('complete', '0')
    end
    call(unpack(args))
    if added > 0 then
      reverify(info.meta) -- a data subject's batch verifies its new ids too
    end
    -- (m[9]: the ids a cancel ended, ledger.Ledger.Cancel.)
    allFinished = finished > 0 and deleted + notFound + failed + (m[9] and m[9] + 0 or 0) >= total
  end
  if not info.sameSlot then
    call('EXPIRE', info.meta, info.ttl)
  end
  if allFinished and tryComplete(b, info.now) then
    completed[#completed + 1] = info
  end
end

-- Report each completed batch with the last attempt that finished in it
-- (an attempt that completes several lists them in the order it finished
-- them).
if #completed > 0 then
  table.sort(completed, function(x, y) return x.lastFinish < y.lastFinish end)
  for _, info in ipairs(completed) do
    local k = info.lastAttempt
    local at = reported[k]
    if at then
      out[at] = out[at] == '' and info.name or out[at] .. ' ' .. info.name
    else
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = k, 1, 1, info.name
      n = n + 4
      reported[k] = n
    end
  end
end
bumpSeq()
return out
