-- Make the live task of an id also record its outcome in another batch.
-- The task may be in any queue (asynq's task ids are unique per queue
-- only): the link names the queue it was found in. A task that is running
-- may be recording its outcome right now and miss the link; the worker's
-- janitor finds such links once the task is no longer live (see
-- internal/maintenance/lua/repair.lua).
-- ARGV: 2 id, 3 batch, 4 the queue to look in first, 5 the asynq task id.
-- Returns "finished" when the id has its outcome in the batch already (a
-- task finished it since the caller looked: nothing to link, nothing to
-- queue), else the live task's state ("pending", "scheduled", "retry",
-- "active": linked), or, when no queue has a live task, the state of the
-- task in the queue looked in first ("archived", "completed", ...) or
-- "gone".
local buckets = redis.call('HGET', metaKey(ARGV[3]), 'buckets')
if buckets then
  local cur = redis.call('HGET', idsKey(ARGV[3], bucket(ARGV[2], tonumber(buckets))), ARGV[2])
  if cur and not isPending(cur) then
    return 'finished'
  end
end
local q, state = liveTaskQueue(ARGV[5], ARGV[4])
if q then
  addLink(ARGV[2], ARGV[3], q)
end
return state or 'gone'
