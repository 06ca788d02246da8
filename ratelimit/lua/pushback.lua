-- The API pushed back (429, 4009, 4020): cut the fleet's rate to a fraction
-- of what it was accepting, at most once per cooldown, and pause the whole
-- budget until Retry-After when the answer gave one.
-- KEYS[1] the budget's hash, 2 the rate the API accepted before this
-- pushback (kept 30 days, so that the next run on the same API and token
-- starts just under it).
-- ARGV: 1 now ms (0: the server's clock), 2 Retry-After ms (0: none),
--       3 cut factor, 4 minimum rate, 5 cooldown ms, 6 configured rate,
--       7 the caller's successes not reported yet (they count as accepted
--       in the current window: a worker reports them with its next
--       reservation, which may come late when its tasks arrive in bursts).
-- Returns the effective rate as a string.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local h = redis.call('HMGET', key, 'rate', 'paused', 'cut_at', 'ok_rate', 'win_start', 'win_ok')
local rate = tonumber(h[1]) or tonumber(ARGV[6])
local unreported = tonumber(ARGV[7]) or 0
if unreported > 0 then
  h[6] = (tonumber(h[6]) or 0) + unreported
  redis.call('HSET', key, 'win_ok', h[6])
  if not h[5] then
    redis.call('HSET', key, 'win_start', now)
  end
end
local retryAfter = tonumber(ARGV[2])
if retryAfter > 0 then
  redis.call('HSET', key, 'paused', math.max(tonumber(h[2]) or 0, now + retryAfter))
end
if now - (tonumber(h[3]) or 0) >= tonumber(ARGV[5]) then
  -- What the API accepted lately is the best guess of its limit: the
  -- current window if it is long enough, else the last one.
  local accepted = tonumber(h[4]) or 0
  local winStart = tonumber(h[5]) or now
  if now - winStart >= 250 then
    accepted = (tonumber(h[6]) or 0) * 1000 / (now - winStart)
  end
  local basis = rate
  if accepted > 0 and accepted < rate then
    basis = accepted
  end
  rate = math.max(tonumber(ARGV[4]), basis * tonumber(ARGV[3]))
  redis.call('HSET', key, 'rate', rate, 'ceiling', basis, 'cut_at', now, 'changed', now, 'k', 0)
  redis.call('SET', KEYS[2], tostring(basis), 'PX', 30 * 24 * 3600000)
end
redis.call('PEXPIRE', key, 3600000)
return tostring(rate)
