-- The farm-wide windows of a chunk's clients, applied atomically: the same
-- semantics as src/window.rs (KeyState::record), over the events of every
-- node. Called once per chunk on a single server (by EVALSHA), once per
-- (rule, client) in a Redis Cluster (by EVAL: a script's keys must share
-- one hash slot).
--
-- Arguments and state are little-endian binary (the `struct` library), not
-- numbers in text and MessagePack tables: those cost about 6 of the first
-- script's 18 µs per window (README, "Web farm").
--
-- KEYS     the windows (strings that expire), one per (rule, client)
-- ARGV[1]  origin ("node file": whose events these are)
-- ARGV[2]  per rule (in the engine's order): window, threshold, cooldown
--          (seconds), and 1 if it counts distinct values ('<IIII')
-- ARGV[3]  per rule, the windows' time to live in ms, as text ("1800000
--          60000": SET reads text; a Lua number would be formatted first)
-- ARGV[k+3] the events of KEYS[k]: rule index, number of groups ('<HI'),
--          then the groups in line order: second, n ('<II') and the n
--          lines' offsets ('<d' each, ascending); for a rule counting
--          distinct values, then the n lines' values (16 bytes each). A
--          group is consecutive events of the client at one second.
-- Returns  per key: late, repeated, number of alerts, then per alert:
--          group, hit (1-based), count
--
-- A window's state: version (1 byte), T (newest second), q (end of the
-- cooldown), c (events in the window), the number of origins ('<BdddI');
-- per origin its name and the offset of the last line applied ('<sd':
-- lines at or before it are repeats after a crash and are not applied
-- again); then per second in the window, ascending: second, hits ('<Id').
-- A rule counting distinct values (version 3) keeps instead, as the engine
-- does (src/window.rs, KeyState::record_value), at most `threshold` values
-- with the second each was last seen: second ('<I'), value (16 bytes).
local sunpack, pack, sub = struct.unpack, struct.pack, string.sub
local VERSION, REC = 2, 12
local VERSION_DISTINCT, VREC = 3, 20

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

-- The state in `raw` (a state of another version counts as none: it came
-- from an older build or another kind of rule, and expires).
local function load(raw, version)
  local names, offs = {}, {}
  if not raw or #raw < 1 or raw:byte(1) ~= version then return -1, 0, 0, names, offs, '' end
  local _, T, q, c, no, p = sunpack('<BdddI', raw)
  for j = 1, no do
    names[j], offs[j], p = sunpack('<sd', raw, p)
  end
  return T, q, c, names, offs, sub(raw, p)
end

-- The first of a group's n offsets (at p in arg) after `done`, n + 1 if none.
local function first_new(arg, p, n, done)
  if sunpack('<d', arg, p) > done then return 1 end
  if sunpack('<d', arg, p + 8 * (n - 1)) <= done then return n + 1 end
  for k = 2, n do
    if sunpack('<d', arg, p + 8 * (k - 1)) > done then return k end
  end
  return n + 1
end

-- Drops the seconds before `oldest` (the first records) and their hits.
local function prune(s, c, oldest)
  local p = 1
  while p <= #s do
    local t, h = sunpack('<Id', s, p)
    if t >= oldest then break end
    c = c - h
    p = p + REC
  end
  return sub(s, p), c
end

-- Adds m hits at second t, keeping the seconds ascending (usually the last
-- record or a new one after it: the search starts from the end).
local function add(s, t, m)
  local p = #s - REC + 1
  while p >= 1 do
    local u, h = sunpack('<Id', s, p)
    if u == t then return sub(s, 1, p - 1) .. pack('<Id', t, h + m) .. sub(s, p + REC) end
    if u < t then break end
    p = p - REC
  end
  return sub(s, 1, p + REC - 1) .. pack('<Id', t, m) .. sub(s, p + REC)
end

-- The index of `origin` among a state's origins (a new one after them).
local function find_origin(names, origin)
  for j = 1, #names do
    if names[j] == origin then return j end
  end
  return #names + 1
end

-- Applies the groups of a counting rule's window (at p in arg) to the
-- state T, q, c, s; alerts go to `out`. Returns T, q, c, s, done, late,
-- repeated, alerts.
local function apply_count(arg, p, groups, r, T, q, c, s, done, out)
  local window, threshold, cooldown = r[1], r[2], r[3]
  local late, repeated, alerts = 0, 0, 0
  for g = 1, groups do
    local t, n
    t, n, p = sunpack('<II', arg, p)
    local first = first_new(arg, p, n, done)
    p = p + 8 * n
    local m = n - first + 1
    repeated = repeated + (n - m)
    if m > 0 then
      done = sunpack('<d', arg, p - 8)
      if T < 0 then T = t end
      if t + window < T then
        late = late + m
      else
        if t > T then
          T = t
          s, c = prune(s, c, T - window)
        end
        local before = c
        s = add(s, t, m)
        c = c + m
        if c >= threshold and T >= q then
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
  return T, q, c, s, done, late, repeated, alerts
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

-- Applies the groups of a distinct count's window, event by event (each
-- line has its value); as apply_count.
local function apply_distinct(arg, p, groups, r, T, q, s, done, out)
  local window, threshold, cooldown = r[1], r[2], r[3]
  local late, repeated, alerts = 0, 0, 0
  local vt, vv = values(s)
  for g = 1, groups do
    local t, n
    t, n, p = sunpack('<II', arg, p)
    local first = first_new(arg, p, n, done)
    local at = p + 8 * n
    repeated = repeated + (first - 1)
    if first <= n then done = sunpack('<d', arg, at - 8) end
    for k = first, n do
      if T >= 0 and t + window < T then
        late = late + 1
      else
        if t > T then T = t end
        see(vt, vv, t, sub(arg, at + 16 * (k - 1), at + 16 * k - 1), T, window, threshold)
        if #vv >= threshold and T >= q then
          local o = #out
          out[o + 1], out[o + 2], out[o + 3] = g, k, #vv
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
  return T, q, #vv, table.concat(parts), done, late, repeated, alerts
end

local origin = ARGV[1]
local out = {}
for k, key in ipairs(KEYS) do
  local arg = ARGV[k + 3]
  local rule, groups, p = sunpack('<HI', arg)
  local r = rules[rule + 1]
  local distinct = r[5] == 1
  local version = distinct and VERSION_DISTINCT or VERSION
  local T, q, c, names, offs, s = load(redis.call('GET', key), version)
  local mine = find_origin(names, origin)
  local done = offs[mine] or -1
  local at = #out
  out[at + 1], out[at + 2], out[at + 3] = 0, 0, 0
  local late, repeated, alerts
  if distinct then
    T, q, c, s, done, late, repeated, alerts = apply_distinct(arg, p, groups, r, T, q, s, done, out)
  else
    T, q, c, s, done, late, repeated, alerts = apply_count(arg, p, groups, r, T, q, c, s, done, out)
  end
  out[at + 1], out[at + 2], out[at + 3] = late, repeated, alerts
  names[mine], offs[mine] = origin, done
  local parts = { pack('<BdddI', version, T, q, c, #names) }
  for j = 1, #names do
    parts[j + 1] = pack('<sd', names[j], offs[j])
  end
  parts[#parts + 1] = s
  redis.call('SET', key, table.concat(parts), 'PX', r[4])
end
return out
