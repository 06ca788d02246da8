-- Make the task already queued for an id also record its outcome in another
-- batch. A task that is running may be recording its outcome right now and
-- miss the link; the worker's janitor finds such links once the task is no
-- longer live (see repair.lua).
-- ARGV: 2 id, 3 batch, 4 queue, 5 the asynq task's key.
-- Returns "finished" when the id has its outcome in the batch already (a
-- task finished it since the caller looked: nothing to link, nothing to
-- queue), else the task's state ("pending", "active", "archived", ...) or
-- "gone"; the link is made for live tasks: pending, scheduled, retry and
-- active.
local buckets = redis.call('HGET', metaKey(ARGV[3]), 'buckets')
if buckets then
  local cur = redis.call('HGET', idsKey(ARGV[3], bucket(ARGV[2], tonumber(buckets))), ARGV[2])
  if cur and not isPending(cur) then
    return 'finished'
  end
end
local state = redis.call('HGET', ARGV[5], 'state')
if state and liveTask[state] then
  local alsoKey = P .. 'also'
  local entry = ARGV[3] .. '@' .. ARGV[4]
  local cur = redis.call('HGET', alsoKey, ARGV[2])
  if not cur then
    redis.call('HSET', alsoKey, ARGV[2], entry)
  elseif not string.find(' ' .. cur .. ' ', ' ' .. entry .. ' ', 1, true) then
    redis.call('HSET', alsoKey, ARGV[2], cur .. ' ' .. entry)
  end
end
return state or 'gone'
