-- The farm-wide windows of a chunk's clients, applied atomically: the same
-- semantics as src/window.rs (KeyState::record), over the events of every
-- node. Called once per chunk on a single server (by EVALSHA), once per
-- (rule, client) in a Redis Cluster (by EVAL: a script's keys must share
-- one hash slot).
--
-- KEYS     the windows (MessagePack strings that expire), one per (rule,
--          client)
-- ARGV     origin ("node file": whose events these are), then per key:
--          window, threshold, cooldown (seconds), ttl (ms), number of
--          groups, and the groups in line order: second, n, and the n
--          lines' offsets (ascending). A group is consecutive events of the
--          client at one second.
-- Returns  per key: late, repeated, number of alerts, then per alert:
--          group, hit (1-based), count
--
-- A window's state: T (newest second), q (end of the cooldown), c (events
-- in the window), s (flat list: second, hits, ascending), o (per origin,
-- the offset of the last line applied: lines at or before it are repeats
-- after a crash and are not applied again).
-- Drops the seconds before T - window (in place: they are the first ones).
local function prune(st, window)
  local s, oldest = st.s, st.T - window
  local gone = 0
  while gone < #s and s[gone + 1] < oldest do gone = gone + 2 end
  if gone > 0 then
    for j = 2, gone, 2 do st.c = st.c - s[j] end
    local n = #s
    for j = gone + 1, n do s[j - gone] = s[j] end
    for j = n - gone + 1, n do s[j] = nil end
  end
end

-- Adds m hits at second t, keeping the seconds ascending.
local function add(st, t, m)
  local j = #st.s - 1
  while j >= 1 and st.s[j] > t do j = j - 2 end
  if j >= 1 and st.s[j] == t then
    st.s[j + 1] = st.s[j + 1] + m
  else
    table.insert(st.s, j + 2, m)
    table.insert(st.s, j + 2, t)
  end
  st.c = st.c + m
end

local origin = ARGV[1]
local out = {}
local i = 2
for _, key in ipairs(KEYS) do
  local window, threshold = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local cooldown, ttl = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local groups = tonumber(ARGV[i + 4])
  i = i + 5
  local raw = redis.call('GET', key)
  local st
  if raw then
    st = cmsgpack.unpack(raw)
  else
    st = { T = -1, q = 0, c = 0, s = {}, o = {} }
  end
  local done = st.o[origin] or -1
  -- The key's results: late, repeated, alerts, then the alerts themselves.
  local at = #out
  out[at + 1], out[at + 2], out[at + 3] = 0, 0, 0
  for g = 1, groups do
    local t, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
    local first = n + 1 -- the first hit not applied before
    for k = 1, n do
      if tonumber(ARGV[i + 1 + k]) > done then first = k break end
    end
    local m = n - first + 1
    out[at + 2] = out[at + 2] + (n - m)
    if m > 0 then
      done = tonumber(ARGV[i + 1 + n])
      if st.T < 0 then st.T = t end
      if t + window < st.T then
        out[at + 1] = out[at + 1] + m
      else
        if t > st.T then
          st.T = t
          prune(st, window)
        end
        local before = st.c
        add(st, t, m)
        if st.c >= threshold and st.T >= st.q then
          local from = math.max(before + 1, threshold)
          local to = from
          if cooldown == 0 then to = st.c end
          for count = from, to do
            out[#out + 1] = g
            out[#out + 1] = first - 1 + count - before
            out[#out + 1] = count
          end
          out[at + 3] = out[at + 3] + (to - from + 1)
          st.q = st.T + cooldown
        end
      end
    end
    i = i + 2 + n
  end
  st.o[origin] = done
  redis.call('SET', key, cmsgpack.pack(st), 'PX', ttl)
end
return out
