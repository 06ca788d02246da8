-- Append a walk of the list endpoint to a batch's listings, kept as long as
-- the batch.
-- ARGV: 2 batch, 3 the most listings a batch keeps, 4 the listing (JSON).
-- Returns how many listings the batch has, or an error: NOBATCH when the
-- batch does not exist (a listing of nothing proves nothing), TOOMANY when
-- it has the most already.
local B = ARGV[2]
local ttl = redis.call('HGET', metaKey(B), 'ttl')
if not ttl then
  return redis.error_reply('NOBATCH batch ' .. B .. ' does not exist')
end
local key = listingsKey(B)
if redis.call('LLEN', key) >= tonumber(ARGV[3]) then
  return redis.error_reply('TOOMANY batch ' .. B .. ' has ' .. ARGV[3] .. ' listings already')
end
local n = redis.call('RPUSH', key, ARGV[4])
redis.call('EXPIRE', key, ttl)
bumpSeq()
return n
