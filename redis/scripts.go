package redis

import "github.com/redis/rueidis"

// The scripts that touch a log. Each runs on the shard of the log's hash
// tag, atomically: KEYS[1] is the state hash, KEYS[2] the stream.
//
// The state hash's fields: e epoch, t top offset (0: no events yet), x end
// (sluice.End as a digit), r ring ("1" or "0"), m MaxLen, o owner, and b
// the base: the first event's data of minShared to maxBase bytes.
//
// Most of a log's events look alike: every chunk of a chat completion
// repeats the same ~190 bytes of JSON around a token of a few. So, as the
// memory store does, an entry holds only what its data does not share with
// the base: fields p and s say how many bytes it shares with the base's
// start and end, and d holds what lies between. A chunk of ~220 bytes
// then costs Redis ~25 (TestAnEmptyLogCostsUnder2KBAndAnEventLittleOverItsData).
//
// Expiry: an ended log, and a ring, expire after the retention unless used
// (a ring's every append and read, and the janitor while a node's readers
// wait on it, push it back); an open log that is not a ring after OpenTTL
// from its last append.

// openScript creates or finds a log. ARGV: mode (modeCreate, modeOpen or
// modeEnsure), epoch, ring, MaxLen, owner, the retention and OpenTTL in
// milliseconds. It returns nil when there is no log and mode creates none,
// 0 when mode is modeCreate and there is one, else {epoch, ring, owner}.
var openScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 'r', 'o', 'x')
if st[1] then
  if ARGV[1] == 'c' then return 0 end
  if st[2] == '1' and st[4] == '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  end
  return {st[1], st[2], st[3]}
end
if ARGV[1] == 'o' then return false end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'r', ARGV[3], 'm', ARGV[4], 'o', ARGV[5], 't', 0, 'x', 0)
if ARGV[3] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
end
return {ARGV[2], ARGV[3], ARGV[5]}
`)

// Modes of openScript.
const (
	modeCreate = "c" // create; a log of that name is a conflict
	modeOpen   = "o" // open; no log is not found
	modeEnsure = "e" // open, or create
)

// appendScript appends one event. ARGV: epoch, data, name, end, channel,
// the retention and OpenTTL in milliseconds. It returns the event's offset,
// or appendGone (no log of this epoch), appendEnded or appendFull.
//
// The entry's fields: d data (or what lies between p and s, see above),
// and only when set, n name and e end (most entries then have the same
// fields, which a stream stores once).
// The message published is "<offset>:<end>:<name length>:<name><data>".
var appendScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 't', 'x', 'r', 'm', 'b')
if st[1] ~= ARGV[1] then return -1 end
if st[3] ~= '0' then return -2 end
local top = tonumber(st[2])
local maxlen = tonumber(st[5])
local ring = st[4] == '1'
if not ring and top >= maxlen and ARGV[4] == '0' then return -3 end
top = top + 1
local args = {'XADD', KEYS[2]}
if ring then
  table.insert(args, 'MAXLEN')
  table.insert(args, maxlen)
end
table.insert(args, top .. '-0')
local data, base = ARGV[2], st[6]
if not base and #data >= 24 and #data <= 4096 then
  redis.call('HSET', KEYS[1], 'b', data)
  base = data
end
local pre, suf = 0, 0
if base then
  -- The longest common start, then end, each by a binary search on
  -- substrings: a few comparisons rather than a loop over every byte.
  local lo, hi = 0, math.min(#base, #data, 65535)
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if string.sub(base, 1, mid) == string.sub(data, 1, mid) then lo = mid else hi = mid - 1 end
  end
  pre = lo
  lo, hi = 0, math.min(#base - pre, #data - pre, 65535)
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if string.sub(base, -mid) == string.sub(data, -mid) then lo = mid else hi = mid - 1 end
  end
  suf = lo
end
if pre + suf >= 24 then
  table.insert(args, 'd')
  table.insert(args, string.sub(data, pre + 1, #data - suf))
  table.insert(args, 'p')
  table.insert(args, pre)
  table.insert(args, 's')
  table.insert(args, suf)
else
  table.insert(args, 'd')
  table.insert(args, data)
end
if ARGV[3] ~= '' then
  table.insert(args, 'n')
  table.insert(args, ARGV[3])
end
if ARGV[4] ~= '0' then
  table.insert(args, 'e')
  table.insert(args, ARGV[4])
end
redis.call(unpack(args))
redis.call('HSET', KEYS[1], 't', top, 'x', ARGV[4])
local ttl = ARGV[7]
if ring or ARGV[4] ~= '0' then ttl = ARGV[6] end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SPUBLISH', ARGV[5], top .. ':' .. ARGV[4] .. ':' .. #ARGV[3] .. ':' .. ARGV[3] .. ARGV[2])
return top
`)

// Results of appendScript other than an offset.
const (
	appendGone  = -1
	appendEnded = -2
	appendFull  = -3
)

// readScript reads a log. ARGV: epoch, the offset to read after, how many
// events at most, the retention in milliseconds. It returns nil when there
// is no log of this epoch, else {top, end, entries, base}: entries as
// XRANGE gives them, none when there are none after the offset or none are
// asked for, and the base they may share bytes with. Reading a ring that has not ended uses it.
var readScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 't', 'x', 'r')
if st[1] ~= ARGV[1] then return false end
if st[4] == '1' and st[3] == '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local entries, base = {}, ''
if tonumber(ARGV[3]) > 0 and tonumber(ARGV[2]) < tonumber(st[2]) then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
  base = redis.call('HGET', KEYS[1], 'b') or ''
end
return {tonumber(st[2]), tonumber(st[3]), entries, base}
`)

// lastScript reports a log's top offset and end. ARGV: epoch. It returns
// nil when there is no log of this epoch, else {top, end}.
var lastScript = rueidis.NewLuaScriptReadOnly(`
local st = redis.call('HMGET', KEYS[1], 'e', 't', 'x')
if st[1] ~= ARGV[1] then return false end
return {tonumber(st[2]), tonumber(st[3])}
`)

// touchScript pushes back the expiry of a ring that has not ended. ARGV:
// epoch, the retention in milliseconds.
var touchScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 'x')
if st[1] ~= ARGV[1] or st[2] ~= '0' then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)
