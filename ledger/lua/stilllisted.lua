-- Record ids of a data subject's batch that a verification listing showed
-- again as still listed: not erased, whatever their DELETE answered.
-- ARGV: 2 batch, 3 verification round, 4 the list call's log id, 5 now ms,
-- 6 now s, 7 the longest msg kept (bytes), 8.. ids (all digits: the caller
-- checks).
-- An id with an outcome becomes failed, code 'still_listed', with the list
-- call's log id; its failure record says so and keeps what the DELETE had
-- answered. Tallies move once per id: an id marked already, a pending id and
-- an id not in the batch are left as they are, and so is everything of a
-- batch whose verification is not pending (a late duplicate task).
-- Returns how many ids this call marked; an error NOTVERIFIED for a batch
-- that is not a data subject's.
local B, round, logID, nowMs, secs = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local maxMsg = tonumber(ARGV[7])
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'buckets', 'ttl', 'verify', 'verification', 'queues')
if not m[1] then
  return 0
end
if m[3] ~= '1' then
  return redis.error_reply('NOTVERIFIED batch ' .. B .. ' is not verified')
end
if m[4] ~= 'pending' then
  return 0
end
local n, ttl = tonumber(m[1]), m[2]
local firstQueue = string.match(m[5] or '', '%S+') or ''

-- cut shortens s to at most n bytes without cutting a UTF-8 sequence.
local function cut(s, n)
  if #s <= n then
    return s
  end
  while n > 0 do
    local c = string.byte(s, n + 1)
    if c < 0x80 or c >= 0xC0 then
      break
    end
    n = n - 1
  end
  return string.sub(s, 1, n)
end

local outcomes = {d = 'deleted', n = 'not_found', f = 'failed'}

-- stillListedMsg is the failure's msg: what the listing found, and what the
-- DELETE had answered (its outcome, code and msg).
local function stillListedMsg(letter, code, msg)
  local answered = outcomes[letter]
  if code ~= '' then
    answered = answered .. ' ' .. code
  end
  local head = 'still listed (verification round ' .. round .. '; the DELETE answered ' .. answered
  if msg ~= '' then
    return cut(head .. ': ' .. msg, maxMsg - 1) .. ')'
  end
  return head .. ')'
end

local marked, fromDeleted, fromNotFound = 0, 0, 0
for i = 8, #ARGV do
  local id = ARGV[i]
  local key = idsKey(B, bucket(id, n))
  local cur = redis.call('HGET', key, id)
  local letter, code, attempts = nil, '', '1'
  if cur and not isPending(cur) then
    letter = string.sub(cur, 1, 1)
    code, attempts = string.match(cur, '^.|([^|]*)|[^|]*|([^|]*)|')
    code, attempts = code or '', attempts or '1'
  end
  if letter and outcomes[letter] and not (letter == 'f' and code == 'still_listed') then
    local fkey = failKey(B, id)
    local f = redis.call('HMGET', fkey, 'msg', 'queue')
    redis.call('HSET', key, id, 'f|still_listed|' .. logID .. '|' .. attempts .. '|' .. secs)
    redis.call('HSETNX', fkey, 'first_at', nowMs)
    redis.call('HSET', fkey, 'batch', B, 'queue', f[2] or firstQueue, 'outcome', 'failed', 'code', 'still_listed',
      'msg', stillListedMsg(letter, code, f[1] or ''), 'http_status', '', 'logid', logID, 'last_at', nowMs,
      'attempts', attempts)
    redis.call('ZADD', failuresKey, nowMs, failMember(B, id))
    redis.call('EXPIRE', fkey, ttl)
    marked = marked + 1
    if letter == 'd' then
      fromDeleted = fromDeleted + 1
    elseif letter == 'n' then
      fromNotFound = fromNotFound + 1
    end
  end
end
if marked > 0 then
  redis.call('HINCRBY', meta, 'still_listed', marked)
  if fromDeleted > 0 then
    redis.call('HINCRBY', meta, 'deleted', -fromDeleted)
  end
  if fromNotFound > 0 then
    redis.call('HINCRBY', meta, 'not_found', -fromNotFound)
  end
  if fromDeleted + fromNotFound > 0 then
    redis.call('HINCRBY', meta, 'failed', fromDeleted + fromNotFound)
  end
  redis.call('EXPIRE', meta, ttl)
  bumpSeq()
end
return marked
