-- Find ids of one bucket of a batch that are pending while no live task
-- exists for them in any queue (their enqueue died between adding them and
-- queueing their tasks), unless a link covers them. A pending id whose
-- live task is in a queue the batch never used (another batch's task) is
-- linked to that task instead: one call serves both batches.
-- An id still 'p' while the batch has ids waiting in an unfed list is
-- among them: the feed makes its task. A batch with ids waiting that is
-- in no queue's feed (its producer held them and died before releasing
-- them) joins the feed now.
-- ARGV: 2 batch, 3 bucket, 4 task id prefix ("del:"), 5 now ms.
-- Returns {queue of the batch, ids...}.
local B = ARGV[2]
local queues = redis.call('HGET', metaKey(B), 'queues') or 'default'
local qs, ours = {}, {}
local unfedWaiting = false
for q in string.gmatch(queues, '%S+') do
  qs[#qs + 1] = q
  ours[q] = true
  if redis.call('EXISTS', unfedKey(B, q)) == 1 then
    unfedWaiting = true
    redis.call('ZADD', feedKey(q), 'NX', ARGV[5], B)
    redis.call('SADD', feedsKey, q)
  end
end
local h = redis.call('HGETALL', idsKey(B, ARGV[3]))
local out = {qs[1] or 'default'}
for i = 1, #h, 2 do
  if isPending(h[i + 1]) and not (unfedWaiting and h[i + 1] == 'p') then
    local id = h[i]
    local live = liveTaskQueue(ARGV[4] .. id, qs[1] or 'default')
    local linked = redis.call('HEXISTS', alsoKey, id) == 1
    if live and not ours[live] and not linked then
      redis.call('HSET', alsoKey, id, B .. '@' .. live)
    elseif not live and not linked then
      out[#out + 1] = id
    end
  end
end
return out
