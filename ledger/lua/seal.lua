-- The caller is done adding ids to a batch (or, with no adder, a janitor
-- checks a batch whose adders' leases ran out): complete it if nothing is
-- pending.
-- ARGV: 2 batch, 3 now ms, 4 adder id ('' for none).
-- Returns 1 when this call completed the batch.
local B = ARGV[2]
if ARGV[4] ~= '' then
  redis.call('ZREM', addersKey(B), ARGV[4])
end
if redis.call('EXISTS', metaKey(B)) == 0 then
  return 0
end
if tryComplete(B, tonumber(ARGV[3])) then
  return 1
end
return 0
