-- Ends the pending ids of a cancelled batch B in buckets [from, to) as
-- cancelled ('c|||attempts|time'), counts them in the batch's 'cancelled'
-- tally, and marks their failure records cancelled. Called in bucket
-- ranges (a batch of millions of ids must not hold Redis for long) after
-- control.lua marked the batch cancelled; the last range tries to complete
-- the batch. Ids that finished meanwhile keep their outcome.
-- ARGV: 2 batch, 3 now ms, 4 from, 5 to, 6 last (1 or 0).
-- Returns {ids cancelled, 1 when this call completed the batch}.
local B, nowMs = ARGV[2], ARGV[3]
local meta = metaKey(B)
if redis.call('EXISTS', meta) == 0 then
  return redis.error_reply('NOBATCH')
end
local secs = string.format('%d', math.floor(tonumber(nowMs) / 1000))
local n = 0
for k = tonumber(ARGV[4]), tonumber(ARGV[5]) - 1 do
  local key = idsKey(B, k)
  local h = redis.call('HGETALL', key)
  for i = 1, #h, 2 do
    local id, v = h[i], h[i + 1]
    if isPending(v) then
      local attempts = '0'
      if v == 'r' then
        local f = failKey(B, id)
        attempts = redis.call('HGET', f, 'attempts') or '0'
        redis.call('HSET', f, 'outcome', 'cancelled')
      end
      redis.call('HSET', key, id, 'c|||' .. attempts .. '|' .. secs)
      n = n + 1
    end
  end
end
if n > 0 then
  redis.call('HINCRBY', meta, 'cancelled', n)
  redis.call('HSET', meta, 'progress_at', nowMs)
  bumpSeq()
end
if ARGV[6] == '1' then
  leaveFeeds(B) -- its ids have their outcome: what waited for a task never gets one
end
local completed = 0
if ARGV[6] == '1' and tryComplete(B, tonumber(nowMs)) then
  completed = 1
end
return {n, completed}
