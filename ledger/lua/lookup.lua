-- Read the entries of some ids of a batch in one call.
-- ARGV: 2 batch, 3.. ids (all digits: the caller checks).
-- Returns one value per id: its entry, or false when the id is not in the
-- batch; an empty list when the batch does not exist.
local B = ARGV[2]
local n = tonumber(redis.call('HGET', metaKey(B), 'buckets') or '0')
if n <= 0 then
  return {}
end
local out = {}
for i = 3, #ARGV do
  out[i - 2] = redis.call('HGET', idsKey(B, bucket(ARGV[i], n)), ARGV[i])
end
return out
