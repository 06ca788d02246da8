-- Create a batch unless it exists, and register the caller as adding ids to
-- it: the batch cannot complete while an adder's lease runs.
-- ARGV: 2 batch, 3 now ms, 4 due ms, 5 note, 6 callback URL, 7 ttl s,
--       8 buckets, 9 adder id, 10 adder lease ms, 11 queue, 12 a new batch's
--       instance id, 13 a new ledger epoch (kept if one exists), 14 profile
--       (never empty: 'default' stands for none), 15 session name ('' for none),
--       16 '1' for a data subject's batch, verified before it completes.
-- Returns {created (0|1), due ms, note, callback URL, buckets, profile,
-- session, verify ('1' or '')} of the batch as it is, where session is 'same' (as ARGV[15]: both
-- none, or the same name), 'none' (the batch has none, ARGV[15] one),
-- 'other' or 'erased' (the batch completed and its name was scrubbed). The
-- name itself never leaves Redis.
-- A batch of another identity (profile or session) is left as it is: no
-- adder, no queue, no open counted.
local B = ARGV[2]
local meta = metaKey(B)
local created = 0
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'created', ARGV[3], 'due', ARGV[4], 'note', ARGV[5], 'callback', ARGV[6],
    'ttl', ARGV[7], 'buckets', ARGV[8], 'total', 0, 'deleted', 0, 'not_found', 0, 'failed', 0,
    'completions', 0, 'complete', 0, 'queues', ARGV[11], 'progress_at', ARGV[3], 'instance', ARGV[12],
    'profile', ARGV[14])
  if ARGV[15] ~= '' then
    -- Personal data: kept only until the batch completes (ScrubSessions).
    redis.call('HSET', meta, 'session', ARGV[15])
    redis.call('SADD', sessionsKey, B)
  end
  if ARGV[16] == '1' then
    redis.call('HSET', meta, 'verify', 1, 'verification', 'pending', 'verify_round', 0, 'still_listed', 0)
  end
  redis.call('ZADD', batchesKey, ARGV[3], B)
  -- The epoch marks the data set this batch lives in: a Redis that comes
  -- back without it lost everything (see ledger.LossDetector).
  redis.call('SET', epochKey, ARGV[13], 'NX')
  created = 1
else
  local id = redis.call('HMGET', meta, 'profile', 'session', 'session_hash')
  -- A batch made before batches had identities, or by a task's record,
  -- has no profile: the default one.
  local profile = id[1] or 'default'
  local session = 'same'
  if id[3] then
    session = 'erased'
  elseif not id[2] and ARGV[15] ~= '' then
    session = 'none'
  elseif (id[2] or '') ~= ARGV[15] then
    session = 'other'
  end
  if profile ~= ARGV[14] or session ~= 'same' then
    local m = redis.call('HMGET', meta, 'due', 'note', 'callback', 'buckets', 'verify')
    return {0, m[1], m[2] or '', m[3] or '', m[4], profile, session, m[5] or ''}
  end
  local queues = redis.call('HGET', meta, 'queues') or ''
  if not string.find(' ' .. queues .. ' ', ' ' .. ARGV[11] .. ' ', 1, true) then
    local joined = string.gsub(queues .. ' ' .. ARGV[11], '^ ', '')
    redis.call('HSET', meta, 'queues', joined)
  end
end
-- Counts the opens: a batch Redis lost counts as enqueued again once it is
-- opened after the loss (see ledger.LostBatches).
redis.call('HINCRBY', meta, 'opens', 1)
redis.call('ZADD', addersKey(B), tonumber(ARGV[3]) + tonumber(ARGV[10]), ARGV[9])
redis.call('PEXPIRE', addersKey(B), tonumber(ARGV[10]) * 2)
local m = redis.call('HMGET', meta, 'due', 'note', 'callback', 'ttl', 'buckets', 'profile', 'verify')
redis.call('EXPIRE', meta, m[4])
bumpSeq()
return {created, m[1], m[2] or '', m[3] or '', m[5], m[6] or 'default', 'same', m[7] or ''}
