-- Reserve the next send slot of a fleet-wide rate budget (GCRA), after
-- counting the successes reported since the caller's last reservation and
-- raising the rate additively when they keep coming.
-- KEYS[1] the budget's hash, 2 the rate the budget last learnt (adaptive).
-- ARGV: 1 now ms (0: the server's clock), 2 configured rate (req/s; the
--       ceiling of an adaptive budget), 3 burst, 4 successes to count,
--       5 increase step ms, 6 fast step (req/s), 7 probe step (req/s),
--       8 '1' for an adaptive budget, 9 its start rate, 10 its growth factor.
-- Returns {wait in microseconds, effective rate as a string}.
--
-- An adaptive budget discovers the API's limit: it starts at the rate it
-- last learnt for this API and token (or the start rate); see adapt.
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
local adaptive = ARGV[8] == '1'
if tonumber(h[1]) ~= cfg or not rate then
  -- A new budget, or the fleet was restarted with another --rate.
  rate, k, ceiling, changed = cfg, 0, 0, now
  if adaptive then
    -- What the API accepted before its last pushback, learnt by an
    -- earlier run: start just under it, as after a pushback.
    local learnt = tonumber(redis.call('GET', KEYS[2]))
    if learnt then
      rate, ceiling = math.min(0.95 * learnt, cfg), learnt
    else
      rate = math.min(tonumber(ARGV[9]), cfg)
    end
  end
end

-- Accepted throughput, counted over windows of at least one second.
winOk = winOk + ok
local okRate = tonumber(redis.call('HGET', key, 'ok_rate')) or 0
if now - winStart >= 1000 then
  okRate = winOk * 1000 / (now - winStart)
  winStart, winOk = now, 0
end

-- adapt moves an adaptive budget's rate on evidence, not on hope: only
-- while what the API accepted over the last full second (okRate) is close
-- to the rate, so that reservations made at a slower rate cannot make it
-- climb unchecked. Before the first pushback it multiplies the rate by the
-- growth factor once per second; after it, it returns quickly to just
-- under the rate the API last accepted (the ceiling), then probes above it
-- by 1% a second, so that a limit that rose is found again.
local grownWin = tonumber(redis.call('HGET', key, 'grown_win')) or 0
local function adapt(r, ch, kk)
  if ok == 0 or r >= cfg or now - ch < tonumber(ARGV[5]) then
    return r, ch, kk
  end
  if ceiling == 0 then
    if okRate >= 0.7 * r and grownWin ~= winStart then
      grownWin = winStart
      return math.min(r * tonumber(ARGV[10]), cfg), now, kk
    end
    return r, ch, kk
  end
  if r < 0.95 * ceiling then
    return math.min(r * 1.1, 0.95 * ceiling, cfg), now, kk
  end
  if okRate >= 0.9 * r then
    return math.min(r * 1.0025, cfg), now, kk
  end
  return r, ch, kk
end

-- Additive increase while answers succeed: fast up to the rate that last
-- drew a 429 (the ceiling), then a probe that speeds up the longer it
-- lasts, so a limit that went up is found again in seconds.
if adaptive then
  rate, changed, k = adapt(rate, changed, k)
elseif ok > 0 and rate < cfg and now - changed >= tonumber(ARGV[5]) then
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
  'ceiling', ceiling, 'win_start', winStart, 'win_ok', winOk, 'ok_rate', okRate, 'grown_win', grownWin)
redis.call('PEXPIRE', key, 3600000)
return {math.floor((slot - now) * 1000), tostring(rate)}
