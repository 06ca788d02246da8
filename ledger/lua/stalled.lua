-- Find ids of one bucket of a batch that are pending while no live task
-- exists for them in any of the batch's queues (their enqueue died between
-- adding them and queueing their tasks), unless a link covers them.
-- ARGV: 2 batch, 3 bucket, 4 asynq key prefix ("asynq:{"), 5 task id prefix
-- ("}:t:del:").
-- Returns {queue of the batch, ids...}.
local B = ARGV[2]
local queues = redis.call('HGET', metaKey(B), 'queues') or 'default'
local qs = {}
for q in string.gmatch(queues, '%S+') do
  qs[#qs + 1] = q
end
local h = redis.call('HGETALL', idsKey(B, ARGV[3]))
local out = {qs[1] or 'default'}
for i = 1, #h, 2 do
  if isPending(h[i + 1]) then
    local id = h[i]
    local live = false
    for _, q in ipairs(qs) do
      local state = redis.call('HGET', ARGV[4] .. q .. ARGV[5] .. id, 'state')
      if state and liveTask[state] then
        live = true
        break
      end
    end
    if not live and redis.call('HEXISTS', P .. 'also', id) == 0 then
      out[#out + 1] = id
    end
  end
end
return out
