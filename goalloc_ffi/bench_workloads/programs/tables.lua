-- Table-heavy Lua 5.4 workload for the goalloc benchmark suite.
-- Usage: lua5.4 tables.lua SCALE
-- Lua allocates through one realloc-style function (malloc, realloc and
-- free underneath), so growing tables, string building and the incremental
-- GC reach the allocator directly. Lua salts its string hashes per run, so
-- nothing printed depends on pairs() order: only sums and sorted lists.

local scale = tonumber(arg[1]) or 4
local M = 0x7FFFFFFF
local state = 12345
local function rand(n)
  state = (state * 1103515245 + 12345) & M
  return state % n
end
local function fold(acc, x) return (acc * 33 + x) & M end

-- Objects: many small tables with a few fields, kept in a rolling window.
local function objects()
  local acc, window = 0, {}
  for i = 1, 60000 * scale do
    local o = { id = i, x = rand(1000), y = rand(1000), name = "obj" .. (i % 977) }
    window[i % 5000 + 1] = o
    if i % 7 == 0 then
      local w = window[rand(5000) + 1]
      acc = fold(acc, w and w.x or 0)
    end
  end
  return acc
end

-- Arrays: append, insert and remove in the middle, sort.
local function arrays()
  local acc = 0
  for r = 1, 2 * scale do
    local t = {}
    for i = 1, 30000 do t[#t + 1] = rand(100000) end
    for i = 1, 300 do table.insert(t, rand(#t) + 1, i) end
    for i = 1, 300 do table.remove(t, rand(#t) + 1) end
    table.sort(t)
    for i = 1, #t, 997 do acc = fold(acc, t[i]) end
  end
  return acc
end

-- Hash tables: string keys inserted, updated and deleted.
local function hashes()
  local acc = 0
  for r = 1, 2 * scale do
    local h = {}
    for i = 1, 40000 do
      local k = "key" .. rand(20000)
      h[k] = (h[k] or 0) + i
    end
    for i = 1, 20000, 2 do h["key" .. i] = nil end
    local keys = {}
    for k, v in pairs(h) do keys[#keys + 1] = k end
    table.sort(keys)
    for i = 1, #keys, 101 do acc = fold(acc, h[keys[i]] % 65536) end
  end
  return acc
end

-- Strings: concatenation, table.concat, gsub and splitting.
local function strings()
  local acc = 0
  for r = 1, 3 * scale do
    local parts = {}
    for i = 1, 8000 do parts[#parts + 1] = string.format("%d:%x", i, rand(1 << 20)) end
    local s = table.concat(parts, ",")
    s = s:gsub("(%d+):", "<%1>")
    local n = 0
    for word in s:gmatch("[^,]+") do n = n + #word end
    acc = fold(acc, n)
  end
  return acc
end

-- A tree of nested tables built and dropped (the GC frees it).
local function trees()
  local function build(d)
    if d == 0 then return { v = 1 } end
    return { l = build(d - 1), r = build(d - 1), v = d }
  end
  local function sum(t) return t.v + (t.l and sum(t.l) or 0) + (t.r and sum(t.r) or 0) end
  local acc = 0
  for r = 1, scale do acc = fold(acc, sum(build(15))) end
  return acc
end

for _, f in ipairs({ { "objects", objects }, { "arrays", arrays }, { "hashes", hashes },
                     { "strings", strings }, { "trees", trees } }) do
  print(f[1], f[2]())
end
