-- Find the links of an id whose task is gone while the id is still pending
-- in the linked batch: the task finished before the link was made. They are
-- removed and returned, for the caller to queue a new task each.
-- ARGV: 2 id, 3 asynq key prefix ("asynq:{"), 4 the rest of the task key after
-- the queue name ("}:t:<task id>").
-- Returns a list of "batch@queue".
local alsoKey = P .. 'also'
local id = ARGV[2]
local cur = redis.call('HGET', alsoKey, id)
if not cur then
  return {}
end
local keep, orphans = {}, {}
for entry in string.gmatch(cur, '%S+') do
  local b, q = string.match(entry, '^(.-)@(.*)$')
  if redis.call('EXISTS', ARGV[3] .. q .. ARGV[4]) == 1 then
    keep[#keep + 1] = entry
  else
    local m = redis.call('HGET', metaKey(b), 'buckets')
    if m and redis.call('HGET', idsKey(b, bucket(id, tonumber(m))), id) == 'p' then
      orphans[#orphans + 1] = entry
    end
  end
end
if #keep == 0 then
  redis.call('HDEL', alsoKey, id)
else
  redis.call('HSET', alsoKey, id, table.concat(keep, ' '))
end
return orphans
