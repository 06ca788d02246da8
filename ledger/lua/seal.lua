-- The caller is done adding ids to a batch (or, with no adder, a janitor
-- checks a batch whose adders' leases ran out): complete it if nothing is
-- pending.
-- ARGV: 2 batch, 3 now ms, 4 adder id ('' for none), 5 input lines the
-- adder refused as invalid (added to the batch's 'invalid' count).
-- Returns 1 when this call completed the batch.
local B = ARGV[2]
if ARGV[4] ~= '' then
  redis.call('ZREM', addersKey(B), ARGV[4])
end
if redis.call('EXISTS', metaKey(B)) == 0 then
  return 0
end
local invalid = tonumber(ARGV[5]) or 0
if invalid > 0 then
  redis.call('HINCRBY', metaKey(B), 'invalid', invalid)
  bumpSeq()
end
if tryComplete(B, tonumber(ARGV[3])) then
  return 1
end
return 0
