-- Record where a data subject's batch looks for their conversations: the
-- bots and connectors its discovery lists, before the first page is read,
-- so that its verification lists each of them even when the discovery died
-- before it recorded its listings.
-- ARGV: 2 batch, 3.. targets ("bot:connector").
-- Returns 1, or 0 when the batch does not exist or is not verified.
local B = ARGV[2]
local meta = metaKey(B)
local m = redis.call('HMGET', meta, 'verify', 'targets')
if m[1] ~= '1' then
  return 0
end
local have = {}
local out = {}
for t in string.gmatch(m[2] or '', '%S+') do
  have[t] = true
  out[#out + 1] = t
end
for i = 3, #ARGV do
  if not have[ARGV[i]] then
    have[ARGV[i]] = true
    out[#out + 1] = ARGV[i]
  end
end
redis.call('HSET', meta, 'targets', table.concat(out, ' '))
bumpSeq()
return 1
