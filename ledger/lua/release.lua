-- Let batch B's held ids be fed: for each queue of the batch whose unfed
-- list holds ids, the batch joins the queue's feed at the feed time (or
-- keeps its place there), and its tasks get the retry budget given.
-- ARGV: 2 batch, 3 feed time ms, 4 the tasks' asynq max retry.
-- Returns how many ids wait.
local B = ARGV[2]
local meta = metaKey(B)
local waiting = 0
for q in string.gmatch(redis.call('HGET', meta, 'queues') or 'default', '%S+') do
  local n = redis.call('LLEN', unfedKey(B, q))
  if n > 0 then
    redis.call('ZADD', feedKey(q), 'NX', ARGV[3], B)
    redis.call('SADD', feedsKey, q)
    waiting = waiting + n
  end
end
if waiting > 0 then
  redis.call('HSET', meta, 'max_retry', ARGV[4])
end
return waiting
