-- Reserve the next send slot of a fleet-wide rate budget (GCRA), after
-- counting the successes reported since the caller's last reservation and
-- raising the rate additively when they keep coming.
-- KEYS[1] the budget's hash.
-- ARGV: 1 now ms (0: the server's clock), 2 configured rate (req/s),
--       3 burst, 4 successes to count, 5 increase step ms,
--       6 fast step (req/s), 7 probe step (req/s).
-- Returns {wait in microseconds, effective rate as a string}.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local cfg, burst, ok = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'cfg', 'rate', 'tat', 'paused', 'changed', 'k', 'ceiling', 'win_start', 'win_ok')
local rate, tat, paused = tonumber(h[2]), tonumber(h[3]) or now, tonumber(h[4]) or 0
local changed, k, ceiling = tonumber(h[5]) or now, tonumber(h[6]) or 0, tonumber(h[7]) or 0
local winStart, winOk = tonumber(h[8]) or now, tonumber(h[9]) or 0
if tonumber(h[1]) ~= cfg or not rate then
  -- A new budget, or the fleet was restarted with another --rate.
  rate, k, ceiling, changed = cfg, 0, 0, now
end

-- Accepted throughput, counted over windows of at least one second.
winOk = winOk + ok
local okRate = tonumber(redis.call('HGET', key, 'ok_rate')) or 0
if now - winStart >= 1000 then
  okRate = winOk * 1000 / (now - winStart)
  winStart, winOk = now, 0
end

-- Additive increase while answers succeed: fast up to the rate that last
-- drew a 429 (the ceiling), then a probe that speeds up the longer it
-- lasts, so a limit that went up is found again in seconds.
if ok > 0 and rate < cfg and now - changed >= tonumber(ARGV[5]) then
  k = k + 1
  if rate < ceiling then
    rate = math.min(rate + tonumber(ARGV[6]) * k, ceiling)
  else
    rate = rate + tonumber(ARGV[7]) * k
  end
  rate = math.min(rate, cfg)
  changed = now
end

-- GCRA with reservation: the caller's slot is the theoretical arrival time
-- less the burst tolerance, never before now nor before a pause ends.
local interval = 1000 / rate
local t = math.max(tat, now, paused)
local slot = math.max(t - interval * (burst - 1), now, paused)
redis.call('HSET', key, 'cfg', cfg, 'rate', rate, 'tat', t + interval, 'changed', changed, 'k', k,
  'ceiling', ceiling, 'win_start', winStart, 'win_ok', winOk, 'ok_rate', okRate)
redis.call('PEXPIRE', key, 3600000)
return {math.floor((slot - now) * 1000), tostring(rate)}
