-- Find the links of an id whose task is not live (gone, or archived after
-- failing in its batch) while the id is still pending in the linked batch:
-- each needs a new task, whose outcome will clear the link. A link whose
-- task is gone while another queue holds a live task of the id is moved to
-- that task. Links whose batch expired or already has the id's outcome are
-- dropped.
-- ARGV: 2 id, 3 the asynq task id of the id.
-- Returns a list of "batch@queue".
local id = ARGV[2]
local cur = redis.call('HGET', alsoKey, id)
if not cur then
  return {}
end
local keep, kept, orphans = {}, {}, {}
for entry in string.gmatch(cur, '%S+') do
  local b, q = string.match(entry, '^(.-)@(.*)$')
  local m = redis.call('HGET', metaKey(b), 'buckets')
  local pending = m and isPending(redis.call('HGET', idsKey(b, bucket(id, tonumber(m))), id))
  if pending then
    local live = liveTaskQueue(ARGV[3], q)
    if live then
      entry = b .. '@' .. live
    else
      orphans[#orphans + 1] = entry
    end
    if not kept[entry] then
      kept[entry] = true
      keep[#keep + 1] = entry
    end
  end
end
if #keep == 0 then
  redis.call('HDEL', alsoKey, id)
else
  redis.call('HSET', alsoKey, id, table.concat(keep, ' '))
end
return orphans
