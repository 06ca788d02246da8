-- Start round ARGV[3] of a data subject's batch's verification: its listing
-- found conversations the batch did not hold, which join it and are deleted;
-- the next round verifies them.
-- ARGV: 2 batch, 3 round.
-- Returns 1 when started; 0 when the batch is not verifying, or that round
-- is not the next (a duplicate task): nothing is changed.
local B, round = ARGV[2], tonumber(ARGV[3])
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'verify', 'verification', 'verify_round')
if m[1] ~= '1' or m[2] ~= 'pending' or (tonumber(m[3]) or 0) ~= round - 1 then
  return 0
end
redis.call('HSET', meta, 'verify_round', ARGV[3])
redis.call('SREM', verifyKey, verifyMember(B, ARGV[3]))
bumpSeq()
return 1
