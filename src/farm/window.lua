-- One rule's farm-wide window of one client, applied atomically: the same
-- semantics as src/window.rs (KeyState::record), over the events of every
-- node. Called once per (rule, client) and chunk, by EVALSHA.
--
-- KEYS[1]  the window (a MessagePack string that expires)
-- ARGV     window, threshold, cooldown (seconds), ttl (ms), origin
--          ("node file": whose events these are), then groups in line
--          order: second, n, and the n lines' offsets (ascending). A group
--          is consecutive events of this client at one second.
-- Returns  { late, repeated, then per alert: group, hit (1-based), count }
--
-- The state: T (newest second), q (end of the cooldown), c (events in the
-- window), s (flat list: second, hits, ascending), o (per origin, the
-- offset of the last line applied: lines at or before it are repeats after
-- a crash and are not applied again).
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local origin = ARGV[5]

local raw = redis.call('GET', KEYS[1])
local st
if raw then
  st = cmsgpack.unpack(raw)
else
  st = { T = -1, q = 0, c = 0, s = {}, o = {} }
end
local done = st.o[origin] or -1

-- Drops the seconds before T - window.
local function prune()
  local oldest = st.T - window
  local keep, gone = {}, 0
  for j = 1, #st.s, 2 do
    if st.s[j] >= oldest then
      keep[#keep + 1] = st.s[j]
      keep[#keep + 1] = st.s[j + 1]
    else
      gone = gone + st.s[j + 1]
    end
  end
  st.s = keep
  st.c = st.c - gone
end

-- Adds m hits at second t, keeping the seconds ascending.
local function add(t, m)
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

local out = { 0, 0 }
local i, g = 6, 0
while i <= #ARGV do
  g = g + 1
  local t, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local first = n + 1 -- the first hit not applied before
  for k = 1, n do
    if tonumber(ARGV[i + 1 + k]) > done then first = k break end
  end
  local m = n - first + 1
  out[2] = out[2] + (n - m)
  if m > 0 then
    done = tonumber(ARGV[i + 1 + n])
    if st.T < 0 then st.T = t end
    if t + window < st.T then
      out[1] = out[1] + m
    else
      if t > st.T then
        st.T = t
        prune()
      end
      local before = st.c
      add(t, m)
      if st.c >= threshold and st.T >= st.q then
        local from = math.max(before + 1, threshold)
        local to = from
        if cooldown == 0 then to = st.c end
        for count = from, to do
          out[#out + 1] = g
          out[#out + 1] = first - 1 + count - before
          out[#out + 1] = count
        end
        st.q = st.T + cooldown
      end
    end
  end
  i = i + 2 + n
end
st.o[origin] = done
redis.call('SET', KEYS[1], cmsgpack.pack(st), 'PX', ttl)
return out
