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
--          (seconds, '<III')
-- ARGV[3]  per rule, the windows' time to live in ms, as text ("1800000
--          60000": SET reads text; a Lua number would be formatted first)
-- ARGV[k+3] the events of KEYS[k]: rule index, number of groups ('<HI'),
--          then the groups in line order: second, n ('<II') and the n
--          lines' offsets ('<d' each, ascending). A group is consecutive
--          events of the client at one second.
-- Returns  per key: late, repeated, number of alerts, then per alert:
--          group, hit (1-based), count
--
-- A window's state: version (1 byte), T (newest second), q (end of the
-- cooldown), c (events in the window), the number of origins ('<BdddI');
-- per origin its name and the offset of the last line applied ('<sd':
-- lines at or before it are repeats after a crash and are not applied
-- again); then per second in the window, ascending: second, hits ('<Id').
local sunpack, pack, sub = struct.unpack, struct.pack, string.sub
local VERSION, REC = 2, 12

local rules = {}
do
  local h, p = ARGV[2], 1
  while p <= #h do
    local r = {}
    r[1], r[2], r[3], p = sunpack('<III', h, p)
    rules[#rules + 1] = r
  end
  local i = 1
  for ttl in string.gmatch(ARGV[3], '%d+') do
    rules[i][4] = ttl
    i = i + 1
  end
end

-- The state in `raw` (a state of another version counts as none: it came
-- from an older build, and expires).
local function load(raw)
  local names, offs = {}, {}
  if not raw or #raw < 1 or raw:byte(1) ~= VERSION then return -1, 0, 0, names, offs, '' end
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

local origin = ARGV[1]
local out = {}
for k, key in ipairs(KEYS) do
  local arg = ARGV[k + 3]
  local rule, groups, p = sunpack('<HI', arg)
  local r = rules[rule + 1]
  local window, threshold, cooldown, ttl = r[1], r[2], r[3], r[4]
  local T, q, c, names, offs, s = load(redis.call('GET', key))
  local mine = #names + 1
  for j = 1, #names do
    if names[j] == origin then mine = j break end
  end
  local done = offs[mine] or -1
  local late, repeated, alerts = 0, 0, 0
  local at = #out
  out[at + 1], out[at + 2], out[at + 3] = 0, 0, 0
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
  out[at + 1], out[at + 2], out[at + 3] = late, repeated, alerts
  names[mine], offs[mine] = origin, done
  local parts = { pack('<BdddI', VERSION, T, q, c, #names) }
  for j = 1, #names do
    parts[j + 1] = pack('<sd', names[j], offs[j])
  end
  parts[#parts + 1] = s
  redis.call('SET', key, table.concat(parts), 'PX', ttl)
end
return out
