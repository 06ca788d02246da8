-- Mark a batch lost, unless it is marked already, or Redis still holds it
-- and the caller does not say that what Redis holds is older data.
-- ARGV: 2 batch, 3 now ms, 4 whether it had ids pending ('1' or '0'),
-- 5 ttl s of the lost record, 6 '1' to mark a batch Redis still holds.
-- Returns 1 when this call marked it.
if ARGV[6] ~= '1' and redis.call('EXISTS', metaKey(ARGV[2])) == 1 then
  return 0
end
return markLost(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
