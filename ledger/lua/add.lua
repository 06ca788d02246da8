-- Add ids to a batch as pending, unless they are members already.
-- ARGV: 2 batch, 3.. ids.
-- Returns one letter per id: n (new member), p (member, pending), t (member, finished).
local meta = metaKey(ARGV[2])
local m = redis.call('HMGET', meta, 'buckets', 'ttl', 'due')
if not m[1] then
  return redis.error_reply('NOBATCH batch ' .. ARGV[2] .. ' does not exist')
end
local n, ttl = tonumber(m[1]), tonumber(m[2])
local out, added, touched = {}, 0, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = idsKey(ARGV[2], bucket(id, n))
  local cur = redis.call('HGET', key, id)
  if not cur then
    redis.call('HSET', key, id, 'p')
    touched[key] = true
    added = added + 1
    out[#out + 1] = 'n'
  elseif cur == 'p' then
    out[#out + 1] = 'p'
  else
    out[#out + 1] = 't'
  end
end
for key in pairs(touched) do
  redis.call('EXPIRE', key, ttl)
end
if added > 0 then
  redis.call('HINCRBY', meta, 'total', added)
  redis.call('ZADD', P .. 'batches:open', m[3], ARGV[2])
end
redis.call('EXPIRE', meta, ttl)
return table.concat(out)
