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
// milliseconds, this node's ID, the lease in milliseconds, and the data of
// the event that ends the log if its writer is lost (sluice.LogOptions.Lost;
// empty: the log has no lease). It returns nil when there is no log and
// mode creates none, 0 when mode is modeCreate and there is one, else
// {epoch, ring, owner, writer}: writer is the node that holds the log's
// lease, or "" when it has none.
//
// A leased log's state also holds n, its writer's node, l, when its lease
// lapses (in milliseconds of Redis's clock, the one clock that every node
// shares), L, the data of its lost ending, and k once a stop was asked.
var openScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 'r', 'o', 'x', 'n')
if st[1] then
  if ARGV[1] == 'c' then return 0 end
  if st[2] == '1' and st[4] == '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  end
  return {st[1], st[2], st[3], st[5] or ''}
end
if ARGV[1] == 'o' then return false end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'r', ARGV[3], 'm', ARGV[4], 'o', ARGV[5], 't', 0, 'x', 0)
local writer = ''
if ARGV[10] ~= '' and ARGV[3] ~= '1' then
  local now = redis.call('TIME')
  now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', KEYS[1], 'n', ARGV[8], 'l', now + tonumber(ARGV[9]), 'L', ARGV[10])
  writer = ARGV[8]
end
if ARGV[3] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
end
return {ARGV[2], ARGV[3], ARGV[5], writer}
`)

// Modes of openScript.
const (
	modeCreate = "c" // create; a log of that name is a conflict
	modeOpen   = "o" // open; no log is not found
	modeEnsure = "e" // open, or create
)

// appendScript appends events, in order, in one run. ARGV: epoch, channel,
// the retention and OpenTTL in milliseconds, the appending node's ID, then
// three for each event: its data, name and end. It returns {status, top,
// appended}: the log's top offset after the run and how many of the events
// it appended (they end at top), with status appendOK, appendGone (no log
// of this epoch), appendEnded, appendFull (the events from the first that
// did not fit were not appended), appendLost or appendNotWriter.
//
// A leased log whose lease has lapsed is lost: the first run that sees it
// so, whoever runs it, appends its lost ending (L, as an error) in place of
// its events, provisionalSlack offsets past the top (see provisional.go), so that the log ends once, with that, and every later append
// (a lost writer that wakes up) is refused. With no events the run only
// looks: the readers' nodes run it so to end the logs of lost writers.
//
// The entry's fields: d data (or what lies between p and s, see above),
// and only when set, n name and e end (most entries then have the same
// fields, which a stream stores once). One message is published for the
// run's events, each "<offset>:<end>:<name length>:<data length>:<name><data>".
var appendScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 't', 'x', 'r', 'm', 'b', 'n', 'l')
if st[1] ~= ARGV[1] then return {-1, 0, 0} end
local top = tonumber(st[2])
if st[3] ~= '0' then return {-2, top, 0} end
local ring = st[4] == '1'
local maxlen = tonumber(st[5])
local base = st[6]
local msg, ended = {}, '0'

local function add(data, name, e)
  top = top + 1
  local args = {'XADD', KEYS[2]}
  if ring then
    table.insert(args, 'MAXLEN')
    table.insert(args, maxlen)
  end
  table.insert(args, top .. '-0')
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
  if name ~= '' then
    table.insert(args, 'n')
    table.insert(args, name)
  end
  if e ~= '0' then
    table.insert(args, 'e')
    table.insert(args, e)
  end
  redis.call(unpack(args))
  table.insert(msg, top .. ':' .. e .. ':' .. #name .. ':' .. #data .. ':' .. name .. data)
  ended = e
end

local function commit(status, n)
  if #msg > 0 then
    redis.call('HSET', KEYS[1], 't', top, 'x', ended)
    local ttl = ARGV[4]
    if ring or ended ~= '0' then ttl = ARGV[3] end
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('SPUBLISH', ARGV[2], table.concat(msg))
  end
  return {status, top, n}
end

if st[7] then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(st[8]) then
    top = top + ` + slackLua + `
    add(redis.call('HGET', KEYS[1], 'L') or '', '', '2')
    return commit(-4, 0)
  end
  if #ARGV > 5 and st[7] ~= ARGV[5] then return {-5, top, 0} end
end
local n = 0
for i = 6, #ARGV - 2, 3 do
  if ended ~= '0' then return commit(-2, n) end
  local e = ARGV[i + 2]
  if not ring and top >= maxlen and e == '0' then return commit(-3, n) end
  add(ARGV[i], ARGV[i + 1], e)
  n = n + 1
end
return commit(0, n)
`)

// Results of appendScript.
const (
	appendOK        = 0
	appendGone      = -1
	appendEnded     = -2
	appendFull      = -3
	appendLost      = -4 // the lease had lapsed: this run ended the log as lost
	appendNotWriter = -5 // the log is leased to another node
)

// renewScript renews a lease. KEYS[1] is the log's state hash. ARGV:
// epoch, this node's ID, the lease in milliseconds. It returns renewed,
// renewedStop (and a stop was asked), dropped (the log is gone, ended or
// not this node's) or lapsed (too late: the log is lost, and
// appendScript ends it).
var renewScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 'x', 'n', 'l', 'k')
if st[1] ~= ARGV[1] or st[2] ~= '0' or st[3] ~= ARGV[2] then return 0 end
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now > tonumber(st[4]) then return -1 end
redis.call('HSET', KEYS[1], 'l', now + tonumber(ARGV[3]))
if st[5] then return 2 end
return 1
`)

// Results of renewScript.
const (
	renewed     = 1
	renewedStop = 2
	dropped     = 0
	lapsed      = -1
)

// stopScript asks a leased log's writer to stop. KEYS[1] is the log's
// state hash. ARGV: epoch. It marks the log (k), so that the writer learns
// of it at its next renewal if the message that follows is lost, and
// returns the writer's node ID, or nil when the log is gone, has ended or
// has no writer.
var stopScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 'x', 'n')
if st[1] ~= ARGV[1] or st[2] ~= '0' or not st[3] then return false end
redis.call('HSET', KEYS[1], 'k', '1')
return st[3]
`)

// readScript reads a log. ARGV: epoch, the offset to read after, how many
// events at most, the retention in milliseconds. It returns nil when there
// is no log of this epoch, else {top, end, entries, base, leased}: entries
// as XRANGE gives them, none when there are none after the offset or none
// are asked for, the base they may share bytes with, and 1 when the log
// has a writer (a lease), else 0. Reading a ring that has not ended uses
// it.
var readScript = rueidis.NewLuaScript(`
local st = redis.call('HMGET', KEYS[1], 'e', 't', 'x', 'r', 'n')
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
local leased = 0
if st[5] then leased = 1 end
return {tonumber(st[2]), tonumber(st[3]), entries, base, leased}
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
