-- Mark a batch lost, unless Redis still holds it (a batch that exists is
-- not lost) or it is marked already.
-- ARGV: 2 batch, 3 now ms, 4 whether it had ids pending ('1' or '0'),
-- 5 ttl s of the lost record.
-- Returns 1 when this call marked it.
if redis.call('EXISTS', metaKey(ARGV[2])) == 1 then
  return 0
end
return markLost(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
