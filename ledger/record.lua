-- Record one attempt's outcome for a conversation.
-- KEYS[1] the batch's outcome hash, KEYS[2] the conversation's failure hash,
-- KEYS[3] the failure index (sorted set by last attempt, ms).
-- ARGV: 1 id, 2 outcome letter (d n f r), 3 code, 4 msg, 5 http status,
--       6 log id, 7 now (ms), 8 batch, 9 queue, 10 outcome name.
-- Returns {terminal (0|1), attempts}.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 1 then
  -- The batch already has this id's terminal outcome: a duplicate run.
  return {0, 0}
end
local attempts
if ARGV[2] == 'd' then
  attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0') + 1
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], id)
else
  attempts = redis.call('HINCRBY', KEYS[2], 'attempts', 1)
  redis.call('HSETNX', KEYS[2], 'first_at', ARGV[7])
  redis.call('HSET', KEYS[2], 'batch', ARGV[8], 'queue', ARGV[9], 'outcome', ARGV[10],
    'code', ARGV[3], 'msg', ARGV[4], 'http_status', ARGV[5], 'logid', ARGV[6], 'last_at', ARGV[7])
  redis.call('ZADD', KEYS[3], ARGV[7], id)
  if ARGV[2] == 'r' then
    return {0, attempts}
  end
end
redis.call('HSET', KEYS[1], id, ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[6] .. '|' .. attempts .. '|' .. ARGV[7])
return {1, attempts}
