-- Take one of a fleet-wide number of in-flight slots. Holders are kept with
-- the time their lease ends, so the slot of a worker that died comes back.
-- KEYS[1] the holders' sorted set.
-- ARGV: 1 now ms (0: the server's clock), 2 maximum, 3 holder id, 4 lease ms.
-- Returns 1 when the slot was taken.
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2)
  return 1
end
return 0
