package redisstore

import "github.com/redis/rueidis"

// Every write is one Lua script run with EVALSHA (rueidis falls back to EVAL
// after a restart empties the script cache). A script touches only keys
// that share the hash tag of the keys it declares, so it runs atomically on
// one Cluster shard. Scripts never call KEYS or SCAN.
//
// Common arguments: kp is the slot prefix "<prefix>{t:abcd}:", from which
// a script builds record keys (kp.."s:"..member) and index keys
// (kp.."u:"..subject). Times are 8-byte big-endian Unix nanoseconds (see
// codec.go), compared byte-wise, so no precision is lost to Lua's doubles.
//
// Replies are arrays whose first element is a status code:
const (
	codeOK       = 0
	codeNotFound = 1
	codeConflict = 2
	codeCorrupt  = 3
	codeSubject  = 4 // Update tried to change the subject
	codeExists   = 5
)

// luaLib is prepended to every script: the value decoder and splicers,
// which must agree with codec.go.
const luaLib = `
local sub, byte, char, concat = string.sub, string.byte, string.char, table.concat
local band = bit.band

local function uvarint(s, p)
  local n, m = 0, 1
  for _ = 1, 8 do
    local b = byte(s, p)
    if b == nil then return nil, p end
    p = p + 1
    if b < 128 then return n + b * m, p end
    n = n + (b - 128) * m
    m = m * 128
  end
  return nil, p
end

local function uvar(n)
  if n < 128 then return char(n) end
  local t = {}
  while n >= 128 do
    t[#t + 1] = char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  t[#t + 1] = char(n)
  return concat(t)
end

-- seal is the seal of body, the value of member m's record key up to it
-- (codec.go): the first 4 bytes of SHA-1(m .. body).
local function seal(m, body)
  local h = redis.sha1hex(m .. body)
  return char(tonumber(sub(h, 1, 2), 16), tonumber(sub(h, 3, 4), 16),
    tonumber(sub(h, 5, 6), 16), tonumber(sub(h, 7, 8), 16))
end

-- sealed is body (starting with format 2) followed by its seal; the
-- write scripts' last argument is "unsealed" for a store that writes
-- format 1 (Options.Unsealed, a rolling upgrade from binaries without
-- seals), and then it is body as format 1.
local function sealed(m, body)
  if ARGV[#ARGV] == 'unsealed' then return char(1) .. sub(body, 2) end
  return body .. seal(m, body)
end

-- unseal returns the body of v, the value of member m's record key: v
-- itself if it was written before seals (format 1), v without its seal
-- (format 2) if the seal matches or m is false (a caller that only prunes
-- the index, never rewrites or trusts v); nil otherwise (missing key too).
local function unseal(v, m)
  if type(v) ~= 'string' then return nil end
  local f = byte(v, 1)
  if f == 1 then return v end
  if f ~= 2 or #v < 5 then return nil end
  local body = sub(v, 1, #v - 4)
  if m and seal(m, body) ~= sub(v, #v - 3) then return nil end
  return body
end

-- dec parses the value v of member m's record key (m false: seal not
-- checked, see unseal) into the fields and positions the scripts use, all
-- of them in its body s (the value without its seal); nil if v is not a
-- value (missing key: false). The table is built by one constructor, so
-- it is allocated once at its final size.
local function dec(orig, m)
  local v = unseal(orig, m)
  if v == nil then return nil end
  local ver, fix = uvarint(v, 2)
  if ver == nil then return nil end
  local fpos = fix + 160
  local f = byte(v, fpos)
  if f == nil then return nil end
  local p = fpos + 1
  if band(f, 1) ~= 0 then p = p + 8 end
  local prevpos = p
  if band(f, 2) ~= 0 then p = p + 32 end
  if band(f, 4) ~= 0 then p = p + 8 end
  local revpos = p
  local revoked = band(f, 8) ~= 0
  if revoked then p = p + 8 end
  local gen, subjpos = uvarint(v, p)
  if gen == nil then return nil end
  local n, sp = uvarint(v, subjpos)
  if n == nil then return nil end
  local reasonpos = sp + n
  local rn, rp = uvarint(v, reasonpos)
  if rn == nil then return nil end
  local tail = rp + rn
  if tail - 1 > #v then return nil end
  return {s = v, orig = orig, ver = ver, fix = fix, fpos = fpos, flags = f, prevpos = prevpos,
    revpos = revpos, revoked = revoked, gen = gen, subjpos = subjpos,
    reasonpos = reasonpos, tail = tail,
    subject = sub(v, sp, reasonpos - 1),
    rcur = sub(v, fix + 96, fix + 127),
    created = sub(v, fix + 128, fix + 135),
    seen = sub(v, fix + 136, fix + 143),
    idle = sub(v, fix + 144, fix + 151),
    exp = sub(v, fix + 152, fix + 159)}
end

-- cmp compares two byte strings (index members) byte-wise; Lua's own <
-- uses the locale.
local function cmp(a, b)
  if a == b then return 0 end
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  if la < lb then return -1 end
  return 1
end

-- tcmp compares two 8-byte big-endian times exactly, as two 32-bit halves.
local function tcmp(a, b)
  if a == b then return 0 end
  local a1, a2, a3, a4, a5, a6, a7, a8 = byte(a, 1, 8)
  local b1, b2, b3, b4, b5, b6, b7, b8 = byte(b, 1, 8)
  local x = ((a1 * 256 + a2) * 256 + a3) * 256 + a4
  local y = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  if x == y then
    x = ((a5 * 256 + a6) * 256 + a7) * 256 + a8
    y = ((b5 * 256 + b6) * 256 + b7) * 256 + b8
  end
  if x < y then return -1 end
  return 1
end

local function deadline(r)
  if tcmp(r.idle, r.exp) < 0 then return r.idle end
  return r.exp
end

local function live(r, now)
  return not r.revoked and tcmp(now, deadline(r)) < 0
end

-- ceilms turns an 8-byte time into Unix milliseconds rounded up, at least 1,
-- exactly (hi*2^32 = hi*4294*10^6 + hi*967296).
local function ceilms(t)
  local b1, b2, b3, b4, b5, b6, b7, b8 = byte(t, 1, 8)
  if b1 >= 128 then return 1 end
  local hi = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  local lo = ((b5 * 256 + b6) * 256 + b7) * 256 + b8
  local rem = hi * 967296 + lo
  local q = math.floor(rem / 1000000)
  if rem - q * 1000000 > 0 then q = q + 1 end
  local ms = hi * 4294 + q
  if ms < 1 then ms = 1 end
  return ms
end

-- revoke returns r's value (member m) revoked at at with reason, version
-- bumped, sealed.
local function revoke(r, at, reason, m)
  local s = r.s
  return sealed(m, char(2) .. uvar(r.ver + 1) .. sub(s, r.fix, r.fpos - 1) .. char(r.flags + 8) ..
    sub(s, r.fpos + 1, r.revpos - 1) .. at .. sub(s, r.revpos, r.reasonpos - 1) ..
    uvar(#reason) .. reason .. sub(s, r.tail))
end

local function zrem(idx, ms)
  for i = 1, #ms, 1000 do
    redis.call('ZREM', idx, unpack(ms, i, math.min(i + 999, #ms)))
  end
end

-- scan walks the index entries with the lowest scores (last < 0: all),
-- forgets those whose record is gone (Redis expired it at its deadline),
-- unreadable or revoked, and returns those live at now (when given) as
-- {member, record}. An entry merely dead at the caller's now is kept: the
-- caller's clock is not Redis's, and the key expires by itself. Seals are
-- checked when now is given (the records returned are rewritten or
-- listed); a record whose seal fails then leaves the index, and its Get
-- fails closed.
local function scan(idx, kp, now, last)
  local ms = redis.call('ZRANGE', idx, 0, last)
  local dead, alive = {}, {}
  for _, m in ipairs(ms) do
    local r = dec(redis.call('GET', kp .. 's:' .. m), now and m)
    if r == nil or r.revoked then
      dead[#dead + 1] = m
    elseif now and live(r, now) then
      alive[#alive + 1] = {m, r}
    end
  end
  zrem(idx, dead)
  return alive
end

-- keepidx makes the index outlive its longest-lived entry and no more:
-- its PEXPIREAT only ever moves later.
local function keepidx(idx, ms)
  local cur = redis.call('PEXPIRETIME', idx)
  if cur == -1 or (cur >= 0 and cur < ms) then
    redis.call('PEXPIREAT', idx, string.format('%d', ms))
  end
end

-- How many low-scored index entries a write checks besides its own.
local PRUNE = 7

-- emit publishes event n of this script on channel ch (see events.go for
-- the payload), in the same atomic step as the write: an event is sent
-- exactly when its write happened. ch == '': events are off.
local function emit(ch, eid, n, typ, kp, m, subj, x, reason, at)
  if ch == nil or ch == '' then return end
  local id = eid .. '.' .. n
  redis.call('PUBLISH', ch, concat({char(1), uvar(#id), id, uvar(#typ), typ, uvar(#kp), kp, uvar(#m), m,
    uvar(#subj), subj, uvar(#x), x, uvar(#reason), reason, at}))
end

local function emitRevoked(ch, eid, n, kp, m, subj, reason, at)
  emit(ch, eid, n, 'session.revoked', kp, m, subj, '', reason, at)
  if reason == 'refresh-reuse' then
    emit(ch, eid, n + 1, 'session.refresh_reuse', kp, m, subj, '', reason, at)
  end
end
`

// createScript: KEYS record, index. ARGV kp, value, pxat, score, member,
// max, now, evict reason, evict at, event channel, event ID base.
// Reply {OK, evicted members} | {EXISTS}.
var createScript = rueidis.NewLuaScript(luaLib + `
local kp = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 1 then return {5} end
local max = tonumber(ARGV[6])
local evicted = {}
if max > 0 then
  local alive = scan(KEYS[2], kp, ARGV[7], -1)
  local over = #alive + 1 - max
  if over > 0 then
    table.sort(alive, function(a, b)
      local c = tcmp(a[2].seen, b[2].seen)
      if c == 0 then c = tcmp(a[2].created, b[2].created) end
      if c == 0 then c = cmp(a[1], b[1]) end
      return c < 0
    end)
    for i = 1, over do
      local m, r = alive[i][1], alive[i][2]
      redis.call('SET', kp .. 's:' .. m, revoke(r, ARGV[9], ARGV[8], m), 'KEEPTTL')
      evicted[#evicted + 1] = m
      emitRevoked(ARGV[10], ARGV[11], i, kp, m, r.subject, ARGV[8], ARGV[9])
    end
    zrem(KEYS[2], evicted)
  end
else
  scan(KEYS[2], kp, false, PRUNE)
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
keepidx(KEYS[2], tonumber(ARGV[3]))
return {0, evicted}
`)

// updateScript: KEYS record, index. ARGV kp, expected version, value,
// pxat, score, member, subject, "1" if the new value is revoked, event
// channel, event ID base. A new VerifierHash (a renewal) is published.
// Reply {OK} | {NOTFOUND} | {CONFLICT} | {CORRUPT} | {SUBJECT}.
var updateScript = rueidis.NewLuaScript(luaLib + `
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local r = dec(v, ARGV[6])
if r == nil then return {3} end
if r.revoked or r.ver ~= tonumber(ARGV[2]) then return {2} end
if r.subject ~= ARGV[7] then return {4} end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
local _, nfix = uvarint(ARGV[3], 2)
if nfix and sub(v, r.fix, r.fix + 31) ~= sub(ARGV[3], nfix, nfix + 31) then
  emit(ARGV[9], ARGV[10], 1, 'session.renewed', ARGV[1], ARGV[6], r.subject, '', '', sub(ARGV[3], nfix + 136, nfix + 143))
end
if ARGV[8] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
  keepidx(KEYS[2], tonumber(ARGV[4]))
end
scan(KEYS[2], ARGV[1], false, PRUNE)
return {0}
`)

// rotateScript: KEYS record. ARGV kp, expected Refresh.Current, next Key,
// next Current, next Previous ("" if zero), next RotatedAt ("" if zero),
// next Generation, LastSeenAt, IdleExpiresAt, score, member.
// Reply {OK, new value} | {CONFLICT, stored value} | {NOTFOUND} | {CORRUPT}.
var rotateScript = rueidis.NewLuaScript(luaLib + `
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local r = dec(v, ARGV[11])
if r == nil then return {3} end
if r.revoked or r.rcur ~= ARGV[2] then return {2, v} end
local f = band(r.flags, 1)
if ARGV[5] ~= '' then f = f + 2 end
if ARGV[6] ~= '' then f = f + 4 end
local s = r.s
local nv = sealed(ARGV[11], concat({char(2), uvar(r.ver + 1), sub(s, r.fix, r.fix + 63), ARGV[3], ARGV[4],
  r.created, ARGV[8], ARGV[9], r.exp, char(f), sub(s, r.fpos + 1, r.prevpos - 1),
  ARGV[5], ARGV[6], uvar(tonumber(ARGV[7])), sub(s, r.subjpos)}))
local dl = ARGV[9]
if tcmp(r.exp, dl) < 0 then dl = r.exp end
local px = ceilms(dl)
redis.call('SET', KEYS[1], nv, 'PXAT', string.format('%d', px))
local idx = ARGV[1] .. 'u:' .. r.subject
redis.call('ZADD', idx, ARGV[10], ARGV[11])
keepidx(idx, px)
scan(idx, ARGV[1], false, PRUNE)
return {0, nv}
`)

// revokeScript: KEYS record. ARGV kp, member, reason, at, event channel,
// event ID base.
// Reply {OK} | {NOTFOUND} | {CORRUPT}.
var revokeScript = rueidis.NewLuaScript(luaLib + `
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local r = dec(v, ARGV[2])
if r == nil then return {3} end
if r.revoked then return {0} end
redis.call('SET', KEYS[1], revoke(r, ARGV[4], ARGV[3], ARGV[2]), 'KEEPTTL')
emitRevoked(ARGV[5], ARGV[6], 1, ARGV[1], ARGV[2], r.subject, ARGV[3], ARGV[4])
local idx = ARGV[1] .. 'u:' .. r.subject
redis.call('ZREM', idx, ARGV[2])
scan(idx, ARGV[1], false, PRUNE)
return {0}
`)

// revokeSubjectScript: KEYS index. ARGV kp, except member ("" for none),
// reason, at, event channel, event ID base. Reply: the revoked members.
// One subject.revoked event is published whatever was revoked.
//
// This is the one script whose cost grows with a subject's sessions, so its
// loop reads the few bytes it needs without building a table per record.
var revokeSubjectScript = rueidis.NewLuaScript(luaLib + revokeSubjectSrc)

const revokeSubjectSrc = `
local kp, except, at = ARGV[1], ARGV[2], ARGV[4]
local rf = uvar(#ARGV[3]) .. ARGV[3]
local ks = kp .. 's:'
local ms = redis.call('ZRANGE', KEYS[1], 0, -1)
local drop, out = {}, {}
for _, m in ipairs(ms) do
  local k = ks .. m
  local v = unseal(redis.call('GET', k), m)
  local ver, fix
  if v then ver, fix = uvarint(v, 2) end
  local fpos = (fix or 0) + 160
  local f = ver and byte(v, fpos)
  if f == nil or band(f, 8) ~= 0 then
    -- gone, unreadable (its seal failed: its Get fails closed) or
    -- already revoked
    drop[#drop + 1] = m
  elseif m ~= except then
    do
      -- revoked whether or not it has expired by at: by another replica's
      -- clock it may still be live (store.Store, RevokeSubject)
      local p = fpos + 1
      if band(f, 1) ~= 0 then p = p + 8 end
      if band(f, 2) ~= 0 then p = p + 32 end
      if band(f, 4) ~= 0 then p = p + 8 end
      local revpos = p
      -- skip the generation, then the subject and reason fields (their
      -- varints are one byte unless >= 128)
      local q, n
      if byte(v, p) < 128 then q = p + 1 else n, q = uvarint(v, p) end
      n = byte(v, q)
      if n < 128 then q = q + 1 else n, q = uvarint(v, q) end
      local reasonpos = q + n
      n = byte(v, reasonpos)
      if n < 128 then q = reasonpos + 1 else n, q = uvarint(v, reasonpos) end
      redis.call('SET', k, sealed(m, char(2) .. uvar(ver + 1) .. sub(v, fix, fpos - 1) .. char(f + 8) ..
        sub(v, fpos + 1, revpos - 1) .. at .. sub(v, revpos, reasonpos - 1) .. rf .. sub(v, q + n)), 'KEEPTTL')
      drop[#drop + 1] = m
      out[#out + 1] = m
    end
  end
end
if #drop == #ms then
  redis.call('DEL', KEYS[1])
else
  zrem(KEYS[1], drop)
end
emit(ARGV[5], ARGV[6], 1, 'subject.revoked', kp, '', sub(KEYS[1], #kp + 3), except, ARGV[3], at)
return out
`

// listScript: KEYS index. ARGV kp, now. Prunes the whole index and replies
// with member, value pairs of the live entries.
var listScript = rueidis.NewLuaScript(luaLib + `
local alive = scan(KEYS[1], ARGV[1], ARGV[2], -1)
local out = {}
for _, a in ipairs(alive) do
  out[#out + 1] = a[1]
  out[#out + 1] = a[2].orig
end
return out
`)

// saveKeyringScript: KEYS keyring hash. ARGV expected version, new version,
// blob. Reply 1 on success, 0 on a version mismatch.
var saveKeyringScript = rueidis.NewLuaScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then v = '0' end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'b', ARGV[3])
return 1
`)
