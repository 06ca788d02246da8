-- Make tasks for the ids of batches in queue Q's feed, up to what Q's
-- pending list has room for: target tasks waiting, and at most ARGV[7] in
-- this call. Each batch gets an even share of the room, in the order
-- given (the caller reads feedKey(Q) oldest first), and goes to the back
-- of the feed once fed; a batch whose unfed list ran out leaves it. An id
-- is taken from the front of its batch's unfed list and gets its task only
-- while its entry is still 'p' (a cancel, or a task of an earlier run, may
-- have ended it), in the same step as its entry becomes 'q': no id gets
-- two tasks from two feeders, and none is dropped between the list and
-- its task. A paused batch is passed over (and goes to the back of the
-- feed); a cancelled or vanished one, or one given without a template,
-- leaves the feed.
-- An id whose task id is taken (a live task of another batch, or an
-- archived one in Q) is handed back to the caller, still 'p', to link.
-- An id waiting to be fed in another batch of any feed (the same id in
-- two requests) is served by the task made here: that batch's entry
-- becomes 'q' and the id is linked to the task (alsoKey), so that one call
-- records its outcome in both, as when a batch is enqueued while a task
-- of the id waits.
-- ARGV: 2 queue, 3 target, 4 now ms, 5 now ns (asynq's pending_since),
-- 6 task id prefix, 7 most tasks to make, then per batch 5: name, payload
-- prefix, payload suffix, message head, message tail (asynqMessage).
-- Returns {tasks made, tasks waiting in Q after, tasks waiting before,
-- batch, id, batch, id...}.
local Q, target, nowMs, nowNs, tidPrefix = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local pendingList = asynqPendingKey(Q)
local before = redis.call('LLEN', pendingList)
local room = math.min(target - before, tonumber(ARGV[7]))
local out = {0, before, before}
if room <= 0 then
  return out
end
-- As asynq's Client does, and as asynqwire's scripts do: the queue is
-- named in asynq's set of queues, so that Inspector and the cross-queue
-- checks of other writers see its tasks.
redis.call('SADD', asynqQueuesKey, Q)
-- The other batches of every feed, read once: {name, buckets}. Each id
-- fed is looked up in each of them, so they are bounded: past 64 (a
-- backlog of that many requests at once), an id in two of them may get a
-- call per batch, the second answering not_found, as it would for a
-- batch enqueued after the first one's call.
local maxPeers = 64
local peers
local function loadPeers()
  peers = {}
  local seen = {}
  for _, q in ipairs(redis.call('SMEMBERS', feedsKey)) do
    for _, name in ipairs(redis.call('ZRANGE', feedKey(q), 0, -1)) do
      if not seen[name] then
        seen[name] = true
        local n = redis.call('HGET', metaKey(name), 'buckets')
        if n and #peers < maxPeers then
          peers[#peers + 1] = {name, tonumber(n)}
        end
      end
    end
  end
end
-- linkPeers serves the other batches waiting for id with the task of id
-- made in Q for batch B.
local function linkPeers(B, id)
  if not peers then
    loadPeers()
  end
  if #peers < 2 then
    return
  end
  for _, p in ipairs(peers) do
    if p[1] ~= B then
      local key = idsKey(p[1], bucket(id, p[2]))
      if redis.call('HGET', key, id) == 'p' then
        redis.call('HSET', key, id, 'q')
        addLink(id, p[1], Q)
      end
    end
  end
end
local fed = 0
local nb = (#ARGV - 7) / 5
-- Two passes: room a batch left (it ran out of ids) goes to the others.
for pass = 1, 2 do
  for j = 0, nb - 1 do
    if room <= 0 then
      break
    end
    local a = 8 + 5 * j
    local B, pre, suf, head, tail = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local unfed = unfedKey(B, Q)
    local m = redis.call('HMGET', metaKey(B), 'buckets', 'control')
    if not m[1] or m[2] == 'cancelled' or head == '' then
      -- Gone, cancelled, or given without a template (it can get no task:
      -- its session name was erased).
      redis.call('DEL', unfed)
      redis.call('ZREM', feedKey(Q), B)
    elseif m[2] == 'paused' then
      -- To the back of the feed: paused batches must not hold its head,
      -- where the caller looks for the batches to feed.
      redis.call('ZADD', feedKey(Q), nowMs, B)
    elseif redis.call('EXISTS', unfed) == 1 then
      local n = tonumber(m[1])
      local share = room
      if pass == 1 then
        share = math.ceil(room / (nb - j))
      end
      local got, looked, pushed = 0, 0, {}
      -- Ids that finished or were fed already are skipped; looking at four
      -- times the share bounds the call's work.
      while got < share and looked < 4 * share do
        local ids = redis.call('LPOP', unfed, share - got)
        if not ids then
          break
        end
        for _, id in ipairs(ids) do
          looked = looked + 1
          local key = idsKey(B, bucket(id, n))
          if redis.call('HGET', key, id) == 'p' then
            local tid = tidPrefix .. id
            local q, state = liveTaskQueue(tid, Q)
            if q or state then
              out[#out + 1], out[#out + 2] = B, id
            else
              redis.call('HSET', asynqTaskKey(Q, tid), 'msg', asynqMessage(head, pre .. id .. suf, tid, tail),
                'state', 'pending', 'pending_since', nowNs)
              pushed[#pushed + 1] = tid
              redis.call('HSET', key, id, 'q')
              linkPeers(B, id)
              got = got + 1
            end
          end
        end
      end
      fed, room = fed + got, room - got
      -- One push per batch, in order: asynq takes the oldest first.
      for i = 1, #pushed, 1000 do
        redis.call('LPUSH', pendingList, unpack(pushed, i, math.min(i + 999, #pushed)))
      end
      if redis.call('EXISTS', unfed) == 0 then
        redis.call('ZREM', feedKey(Q), B)
      else
        redis.call('ZADD', feedKey(Q), nowMs, B)
      end
    end
  end
end
out[1], out[2] = fed, redis.call('LLEN', pendingList)
return out
