-- The farm-wide windows of a chunk's clients, applied atomically: the same
-- semantics as src/window.rs (KeyState::record), over the events of every
-- node. Called (by EVALSHA) once per up to 256 windows on a single server,
-- once per (rule, client) in a Redis Cluster (a script's keys must share
-- one hash slot).
--
-- Shaped by what costs Redis time, measured by replaying a captured flood
-- (README, "Web farm"): each call from Lua, each string a script makes
-- (Redis's Lua hashes every byte of it) and setting an expiry. So a
-- window's state is small and binary (the `struct` library), its new state
-- is put together from as few pieces of the old one as can be, the seconds
-- a call adds are numbers in a table until packed once, the windows are
-- read with one MGET, and an expiry is set again only when half a window
-- has passed (by Redis's clock) since it last was.
--
-- KEYS     the windows (strings that expire), one per (rule, client)
-- ARGV[1]  origin: 8 bytes naming the node and file whose events these are
-- ARGV[2]  per rule (in the engine's order): window, threshold, cooldown
--          (seconds), and 1 if it counts distinct values ('<IIII')
-- ARGV[3]  per rule, the windows' time to live in ms, as text ("1800000
--          60000": SET reads text; a Lua number would be formatted first)
-- ARGV[k+3] the events of KEYS[k]: rule index, number of groups, number of
--          events ('<HII'), then the groups in line order, each: second,
--          n, the offsets of its first and last lines ('<IIdd'), the
--          offsets of the n - 2 lines between ('<d' each, ascending), and
--          for a rule counting distinct values the n lines' values (16
--          bytes each). A group is consecutive events of the client at one
--          second.
-- Returns  for each window with something to tell (none for most): its
--          index in KEYS, late, repeated, number of alerts, then per alert:
--          group, hit (1-based), count
--
-- A window's state: version (1 byte), T (newest second; 0 before any
-- event), q (end of the cooldown), c (events in the window), E (when its
-- expiry was last set: Redis's clock, seconds), the number of origins
-- ('<BIIIIH'); per origin, the one that wrote last first, its 8 bytes and
-- the offset of the last line it applied ('c8d': lines at or before it are
-- repeats after a crash and are not applied again; at most MAX_ORIGINS,
-- those that wrote longest ago dropped); then per second in the window,
-- ascending: second, hits ('<II'). A rule counting distinct values
-- (version 5) keeps instead, as the engine does (src/window.rs,
-- KeyState::record_value), at most `threshold` values with the second each
-- was last seen: second ('<I'), value (16 bytes).
local sunpack, pack, sub, find = struct.unpack, struct.pack, string.sub, string.find
local COUNT, DISTINCT = 4, 5
local HEAD, ORIG, REC, VREC = 19, 16, 8, 20
local MAX_ORIGINS = 64

-- A call without keys is `check`'s probe that this user may run the script
-- (an ACL can forbid EVALSHA or SCRIPT): it answers and touches nothing.
if #KEYS == 0 then return 'ok' end

local rules = {}
do
  local h, p = ARGV[2], 1
  while p <= #h do
    local r = {}
    r[1], r[2], r[3], r[5], p = sunpack('<IIII', h, p)
    rules[#rules + 1] = r
  end
  local i = 1
  for ttl in string.gmatch(ARGV[3], '%d+') do
    rules[i][4] = ttl
    i = i + 1
  end
end
local id = ARGV[1]
-- Redis's clock, for when to set an expiry again; none where an ACL denies
-- TIME (then every write sets it).
local now
do
  local time = redis.pcall('TIME')
  if not time.err then now = tonumber(time[1]) end
end

-- The state in `raw` ('' if none; a state of another version counts as
-- none: it came from an older build or another kind of rule, and expires):
-- raw, T, q, c, E, the number of origins, where this origin's record is
-- (nil if it has none) and the offset of the last line it applied (-1).
local function load(raw, version)
  if not raw or #raw < HEAD then return '', 0, 0, 0, 0, 0, nil, -1 end
  local v, T, q, c, E, no = sunpack('<BIIIIH', raw)
  if v ~= version then return '', 0, 0, 0, 0, 0, nil, -1 end
  local oend = HEAD + ORIG * no
  -- The 8 bytes could also occur inside an offset: only a record's start counts.
  local at = find(raw, id, HEAD + 1, true)
  while at and at <= oend and (at - HEAD - 1) % ORIG ~= 0 do
    at = find(raw, id, at + 1, true)
  end
  if at and at <= oend then return raw, T, q, c, E, no, at, sunpack('<d', raw, at + 8) end
  return raw, T, q, c, E, no, nil, -1
end

-- The first line of a group (its n offsets: lo, those between at p, hi)
-- after `done`; n + 1 if none.
local function first_new(arg, p, n, lo, hi, done)
  if lo > done then return 1 end
  if hi <= done then return n + 1 end
  for j = 2, n - 1 do
    if sunpack('<d', arg, p + 8 * (j - 2)) > done then return j end
  end
  return n
end

-- Reserves a window's four numbers in `out` before its first alert.
local function opened(out, o)
  if o then return o end
  o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, 0, 0, 0
  return o
end

-- A counting rule's seconds are the records src[ss..se] (of the old state)
-- followed by the new ones, kept as numbers in a table `nw` (second, hits,
-- second, hits, ...; live from index nf): a window's groups add seconds at
-- its end one by one, and strings would be copied (and hashed) at each.

-- Drops the seconds before `oldest` and their hits from c; returns ss, nf
-- and c.
local function prune(src, ss, se, nw, nf, c, oldest)
  while ss <= se do
    local t, h = sunpack('<II', src, ss)
    if t >= oldest then return ss, nf, c end
    c = c - h
    ss = ss + REC
  end
  while nw[nf] and nw[nf] < oldest do
    c = c - nw[nf + 1]
    nf = nf + 2
  end
  return ss, nf, c
end

-- Packs the new seconds nw[nf..] as records, at most PACKED in one call
-- (unpack's results go on Lua's stack, which holds some 8000).
local PACKED = 500
local fmts = {}
local function packed(nw, nf)
  local last = #nw
  if nf > last then return '' end
  if nf + 1 == last then return pack('<II', nw[nf], nw[last]) end
  local parts = {}
  for i = nf, last, 2 * PACKED do
    local j = math.min(i + 2 * PACKED - 1, last)
    local k = (j - i + 1) / 2
    local f = fmts[k]
    if not f then
      f = '<' .. string.rep('II', k)
      fmts[k] = f
    end
    parts[#parts + 1] = pack(f, unpack(nw, i, j))
  end
  return table.concat(parts)
end

-- Adds m hits at second t, not after the last second kept: among the new
-- seconds if it is one of them or after the old ones (searched from the
-- end), else in the old records (then all become old: a string).
local function add(src, ss, se, nw, nf, t, m)
  local oldest_new = nw[nf]
  if not oldest_new then
    if ss <= se then
      local u, h = sunpack('<II', src, se - REC + 1)
      if u == t then
        nw[nf], nw[nf + 1] = t, h + m
        return src, ss, se - REC, nw, nf
      end
    end
  elseif t >= oldest_new then
    local i = #nw - 1
    while i >= nf and nw[i] > t do i = i - 2 end
    if nw[i] == t then
      nw[i + 1] = nw[i + 1] + m
    else
      table.insert(nw, i + 2, m)
      table.insert(nw, i + 2, t)
    end
    return src, ss, se, nw, nf
  end
  local s = sub(src, ss, se) .. packed(nw, nf)
  local p = #s - REC + 1
  while p >= 1 do
    local u, h = sunpack('<II', s, p)
    if u == t then
      s = sub(s, 1, p - 1) .. pack('<II', t, h + m) .. sub(s, p + REC)
      return s, 1, #s, {}, 1
    end
    if u < t then break end
    p = p - REC
  end
  s = sub(s, 1, p + REC - 1) .. pack('<II', t, m) .. sub(s, p + REC)
  return s, 1, #s, {}, 1
end

-- Applies a counting rule's groups (the first one's header already read:
-- t, n, lo, hi; its offsets between at p) to the state T, q, c and the
-- seconds; alerts go to `out`. Returns T, q, c, the seconds (old records
-- src[ss..se] and the new ones packed), done, late, repeated, alerts and
-- where the window's numbers are in `out` (if alerts).
local function apply_count(arg, p, groups, t, n, lo, hi, r, T, q, c, src, ss, se, done, out)
  local window, threshold, cooldown = r[1], r[2], r[3]
  local nw, nf, late, repeated, alerts, o = {}, 1, 0, 0, 0, nil
  for g = 1, groups do
    if g > 1 then t, n, lo, hi, p = sunpack('<IIdd', arg, p) end
    local first = first_new(arg, p, n, lo, hi, done)
    if n > 2 then p = p + 8 * (n - 2) end
    local m = n - first + 1
    repeated = repeated + (first - 1)
    if m > 0 then
      done = hi
      if T == 0 then T = t end
      if t + window < T then
        late = late + m
      else
        if t > T or (ss > se and not nw[nf]) then
          nw[#nw + 1], nw[#nw + 2] = t, m
        else
          src, ss, se, nw, nf = add(src, ss, se, nw, nf, t, m)
        end
        if t > T then
          T = t
          ss, nf, c = prune(src, ss, se, nw, nf, c, T - window)
        end
        local before = c
        c = c + m
        if c >= threshold and T >= q then
          o = opened(out, o)
          local from = math.max(before + 1, threshold)
          local to = from
          if cooldown == 0 then to = c end
          for count = from, to do
            out[#out + 1] = g
            out[#out + 1] = first - 1 + count - before
            out[#out + 1] = count
          end
          alerts = alerts + (to - from + 1)
          q = T + cooldown
        end
      end
    end
  end
  return T, q, c, src, ss, se, packed(nw, nf), done, late, repeated, alerts, o
end

-- The values of a distinct count in `s`: seconds and values, in order.
local function values(s)
  local vt, vv = {}, {}
  for p = 1, #s - VREC + 1, VREC do
    vt[#vt + 1] = sunpack('<I', s, p)
    vv[#vv + 1] = sub(s, p + 4, p + VREC - 1)
  end
  return vt, vv
end

-- One value seen at second t, as KeyState::record_value: kept with the
-- second it was last seen; values before T - window dropped (in order);
-- above `threshold` values, the first one seen longest ago swapped out.
local function see(vt, vv, t, v, T, window, threshold)
  local found = false
  for j = 1, #vv do
    if vv[j] == v then
      if t > vt[j] then vt[j] = t end
      found = true
      break
    end
  end
  if not found then
    vt[#vt + 1], vv[#vv + 1] = t, v
  end
  local k = 0
  for j = 1, #vt do
    if vt[j] >= T - window then
      k = k + 1
      vt[k], vv[k] = vt[j], vv[j]
    end
  end
  for j = #vt, k + 1, -1 do
    vt[j], vv[j] = nil, nil
  end
  if #vt > threshold then
    local i = 1
    for j = 2, #vt do
      if vt[j] < vt[i] then i = j end
    end
    vt[i], vv[i] = vt[#vt], vv[#vv]
    vt[#vt], vv[#vv] = nil, nil
  end
end

-- Applies a distinct count's groups event by event (each line has its
-- value), as apply_count; the values kept come back as one string.
local function apply_distinct(arg, p, groups, t, n, lo, hi, r, T, q, s, done, out)
  local window, threshold, cooldown = r[1], r[2], r[3]
  local late, repeated, alerts, o = 0, 0, 0, nil
  local vt, vv = values(s)
  for g = 1, groups do
    if g > 1 then t, n, lo, hi, p = sunpack('<IIdd', arg, p) end
    local first = first_new(arg, p, n, lo, hi, done)
    local at = p + 8 * math.max(n - 2, 0)
    repeated = repeated + (first - 1)
    if first <= n then done = hi end
    for j = first, n do
      if T > 0 and t + window < T then
        late = late + 1
      else
        if t > T then T = t end
        see(vt, vv, t, sub(arg, at + 16 * (j - 1), at + 16 * j - 1), T, window, threshold)
        if #vv >= threshold and T >= q then
          o = opened(out, o)
          local e = #out
          out[e + 1], out[e + 2], out[e + 3] = g, j, #vv
          alerts = alerts + 1
          q = T + cooldown
        end
      end
    end
    p = at + 16 * n
  end
  local parts = {}
  for j = 1, #vt do
    parts[j] = pack('<I', vt[j]) .. vv[j]
  end
  return T, q, #vv, table.concat(parts), done, late, repeated, alerts, o
end

-- The other origins' records (this one's, at `at`, left out; at most
-- MAX_ORIGINS - 1) followed by the seconds src[ss..se]: the usual case,
-- nothing pruned, is one piece of `raw`. Returns them and how many
-- origins the new state has.
local function rest(raw, no, at, src, ss, se)
  local oend = HEAD + ORIG * no
  if not at then no = no + 1 end
  if no <= MAX_ORIGINS and src == raw and ss == oend + 1 then
    if not at then return sub(raw, HEAD + 1, se), no end
    if at == HEAD + 1 then return sub(raw, at + ORIG, se), no end
    return sub(raw, HEAD + 1, at - 1) .. sub(raw, at + ORIG, se), no
  end
  local others
  if not at then others = sub(raw, HEAD + 1, oend)
  else others = sub(raw, HEAD + 1, at - 1) .. sub(raw, at + ORIG, oend) end
  if no > MAX_ORIGINS then
    others, no = sub(others, 1, ORIG * (MAX_ORIGINS - 1)), MAX_ORIGINS
  end
  if ss == 1 and se == #src then return others .. src, no end
  return others .. sub(src, ss, se), no
end

-- Writes a window's new state; its expiry is set again when half its
-- window has passed since it last was (or Redis did not tell its clock).
local function store(key, r, version, T, q, c, E, raw, no, at, done, src, ss, se, tail)
  local others, origins = rest(raw, no, at, src, ss, se)
  if not now or now - E >= r[1] / 2 then
    local state = pack('<BIIIIHc8d', version, T, q, c, now or 0, origins, id, done) .. others .. tail
    redis.call('SET', key, state, 'PX', r[4])
  else
    local state = pack('<BIIIIHc8d', version, T, q, c, E, origins, id, done) .. others .. tail
    redis.call('SET', key, state, 'KEEPTTL')
  end
end

local out = {}
local raws = redis.call('MGET', unpack(KEYS))
for k, key in ipairs(KEYS) do
  local arg = ARGV[k + 3]
  local rule, groups, events, t, n, lo, hi, p = sunpack('<HIIIIdd', arg)
  local r = rules[rule + 1]
  local version = COUNT
  if r[5] == 1 then version = DISTINCT end
  local raw, T, q, c, E, no, at, done = load(raws[k], version)
  local src, ss, se, tail = raw, HEAD + ORIG * no + 1, #raw, ''
  local late, repeated, alerts, o
  if version == DISTINCT then
    T, q, c, src, done, late, repeated, alerts, o =
      apply_distinct(arg, p, groups, t, n, lo, hi, r, T, q, sub(raw, ss), done, out)
    ss, se = 1, #src
  else
    T, q, c, src, ss, se, tail, done, late, repeated, alerts, o =
      apply_count(arg, p, groups, t, n, lo, hi, r, T, q, c, src, ss, se, done, out)
  end
  if o or late + repeated > 0 then
    o = o or #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = k, late, repeated, alerts
  end
  -- A window none of whose events was applied (all late or repeated) is
  -- left as it is: late events stay late, as T never goes back.
  if late + repeated < events then
    store(key, r, version, T, q, c, E, raw, no, at, done, src, ss, se, tail)
  end
end
return out
