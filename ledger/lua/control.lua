-- Changes batch B's control state (ledger.Ledger.Cancel, Pause, Resume,
-- Extend) and appends the action to its history, in one step, so that the
-- state and its history never disagree.
-- ARGV: 2 batch, 3 action (cancel, pause, resume, extend), 4 now ms, 5 note,
-- 6 new due ms (extend), 7 the most an extension may reach past the
-- batch's original due time, ms.
-- Errors (the Go side names them): NOBATCH, LOST, COMPLETE, CANCELLED,
-- PAUSED (pause of a paused batch), NOTPAUSED (resume of one that is not),
-- EARLIER (due not later than now or the current due), TOOLATE limit-ms.
-- Returns the batch's due time (ms) before the action.
local B, action, nowMs, note = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local meta = metaKey(B)
if redis.call('EXISTS', meta) == 0 then
  return redis.error_reply('NOBATCH')
end
if stillLost(B) then
  return redis.error_reply('LOST')
end
local m = redis.call('HMGET', meta, 'complete', 'control', 'due', 'due_original', 'ttl')
local state, due = m[2] or '', m[3]
if state == 'cancelled' then
  return redis.error_reply('CANCELLED')
end
if m[1] == '1' then
  return redis.error_reply('COMPLETE')
end
local entry = {action = action, at = tonumber(nowMs), note = note}
if action == 'pause' then
  if state == 'paused' then
    return redis.error_reply('PAUSED')
  end
  redis.call('HSET', meta, 'control', 'paused')
elseif action == 'resume' then
  if state ~= 'paused' then
    return redis.error_reply('NOTPAUSED')
  end
  redis.call('HDEL', meta, 'control')
elseif action == 'cancel' then
  redis.call('HSET', meta, 'control', 'cancelled', 'cancelled_at', nowMs)
elseif action == 'extend' then
  local newDue, original = tonumber(ARGV[6]), tonumber(m[4] or due)
  if newDue <= tonumber(due) or newDue <= tonumber(nowMs) then
    return redis.error_reply('EARLIER')
  end
  local limit = original + tonumber(ARGV[7])
  if newDue > limit then
    return redis.error_reply(string.format('TOOLATE %d', limit))
  end
  redis.call('HSET', meta, 'due', ARGV[6], 'due_original', string.format('%d', original))
  redis.call('ZADD', openBatchesKey, 'XX', ARGV[6], B)
  entry.old_due, entry.due = tonumber(due), newDue
else
  return redis.error_reply('unknown action ' .. action)
end
redis.call('RPUSH', historyKey(B), cjson.encode(entry))
redis.call('EXPIRE', historyKey(B), tonumber(m[5]) or tonumber(ARGV[8]))
bumpSeq()
return due
