-- Create a batch unless it exists.
-- ARGV: 2 batch, 3 now ms, 4 due ms, 5 note, 6 callback URL, 7 ttl s, 8 buckets.
-- Returns {created (0|1), due ms, note, callback URL} of the batch as it is.
local meta = metaKey(ARGV[2])
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'created', ARGV[3], 'due', ARGV[4], 'note', ARGV[5], 'callback', ARGV[6],
    'ttl', ARGV[7], 'buckets', ARGV[8], 'total', 0, 'deleted', 0, 'not_found', 0, 'failed', 0, 'completions', 0)
  redis.call('ZADD', P .. 'batches', ARGV[3], ARGV[2])
  redis.call('EXPIRE', meta, ARGV[7])
  return {1, ARGV[4], ARGV[5], ARGV[6]}
end
local m = redis.call('HMGET', meta, 'due', 'note', 'callback')
return {0, m[1], m[2] or '', m[3] or ''}
