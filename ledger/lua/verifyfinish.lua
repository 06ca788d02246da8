-- End a data subject's batch's verification at round ARGV[3]: passed when
-- no id of the batch was found still listed, no conversation is left
-- unverified and no reason says otherwise; failed else. Then the batch
-- completes as any other once nothing else holds it.
-- ARGV: 2 batch, 3 round, 4 unverified, 5 reason ('' for none), 6 now ms.
-- Returns 2 when it ended the verification and completed the batch, 1 when
-- it ended it only, 0 when the batch is not verifying, that round is not
-- the one to end (a duplicate task, a round ended already, or one followed
-- by the next), or ids of the batch are pending or being added: then the
-- round counts as run and the next one verifies them.
local B, round = ARGV[2], tonumber(ARGV[3])
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'verify', 'verification', 'verify_round', 'verify_finished', 'still_listed',
  'verify_requested')
-- A round ended already, or one the ledger asked for a later round since
-- (its new ids are all done), is over.
if m[1] ~= '1' or m[2] ~= 'pending' or round <= (tonumber(m[4]) or 0) or round < (tonumber(m[6]) or 0) then
  return 0
end
local ran = tonumber(m[3]) or 0
if ran ~= round - 1 and ran ~= round then
  return 0
end
-- Ids still pending (a failures retry, a producer adding behind the
-- round's listing, or the new ids of another run of this round) were not
-- seen finished by this round's listing: it proves nothing of them. The
-- round counts as run, and the next one is asked for once they finish.
local t = redis.call('HMGET', meta, 'total', 'deleted', 'not_found', 'failed')
local pending = tonumber(t[1]) ~= tonumber(t[2]) + tonumber(t[3]) + tonumber(t[4])
if pending or redis.call('ZCOUNT', addersKey(B), '(' .. ARGV[6], '+inf') > 0 then
  redis.call('HSET', meta, 'verify_round', ARGV[3])
  redis.call('SREM', verifyKey, verifyMember(B, ARGV[3]))
  bumpSeq()
  tryComplete(B, tonumber(ARGV[6])) -- asks for the next round if they finished meanwhile
  return 0
end
local state = 'failed'
if (tonumber(m[5]) or 0) == 0 and tonumber(ARGV[4]) == 0 and ARGV[5] == '' then
  state = 'passed'
end
redis.call('HSET', meta, 'verification', state, 'verify_round', ARGV[3], 'verify_finished', ARGV[3],
  'unverified', ARGV[4], 'verification_reason', ARGV[5], 'verified_at', ARGV[6])
redis.call('SREM', verifyKey, verifyMember(B, ARGV[3]))
bumpSeq()
if tryComplete(B, tonumber(ARGV[6])) then
  return 2
end
return 1
