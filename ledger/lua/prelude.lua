-- Shared by every ledger script; ARGV[1] is always the key prefix.
local P = ARGV[1]
local function bucket(id, n)
  return tonumber(string.sub(id, -6)) % n
end
local function metaKey(b) return P .. 'batch:' .. b end
local function idsKey(b, k) return P .. 'batch:' .. b .. ':ids:' .. k end
local function failKey(b, id) return P .. 'failure:' .. b .. ':' .. id end
local function failMember(b, id) return b .. '/' .. id end
