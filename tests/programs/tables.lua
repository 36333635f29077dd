-- Table-heavy Lua 5.4 workload with deterministic output.
-- Lua seeds its string hash per run, so nothing printed may depend on the
-- order of pairs(): results are integer sums (order-free) or sorted lists.

local MASK = 0xFFFFFFFF

-- Deterministic generator (a 32-bit LCG), independent of math.random.
local function lcg(seed)
  local state = seed
  return function(n)
    state = (state * 1103515245 + 12345) & 0x7FFFFFFF
    return state % n
  end
end

local function fold(acc, x)
  return ((acc * 31) + x) & MASK
end

local function fold_string(acc, s)
  for i = 1, #s, 7 do acc = fold(acc, s:byte(i)) end
  return fold(acc, #s)
end

-- Arrays: growth by append, insertion/removal in the middle, sort.
local function arrays(rnd)
  local acc = 0
  for round = 1, 8 do
    local t = {}
    for i = 1, 40000 do t[#t + 1] = rnd(1000000) end
    for _ = 1, 300 do table.insert(t, rnd(#t) + 1, round) end
    for _ = 1, 300 do table.remove(t, rnd(#t) + 1) end
    table.sort(t)
    for i = 1, #t, 97 do acc = fold(acc, t[i]) end
    acc = fold(acc, #t)
  end
  return acc
end

-- Hash tables keyed by strings: build, overwrite, delete, rebuild.
local function hashes(rnd)
  local acc, live = 0, 0
  for round = 1, 6 do
    local h = {}
    for i = 1, 30000 do
      local k = string.format("key:%d:%d", rnd(20000), round)
      h[k] = (h[k] or 0) + i
    end
    for k, v in pairs(h) do
      if v % 3 == 0 then h[k] = nil else h[k] = { v, k:upper(), { v % 7 } } end
    end
    local keys = {}
    for k, v in pairs(h) do
      keys[#keys + 1] = k
      acc = (acc + v[1] + v[3][1]) & MASK -- order-free
    end
    table.sort(keys)
    for i = 1, #keys, 50 do acc = fold_string(acc, keys[i]) end
    live = live + #keys
  end
  return fold(acc, live)
end

-- Strings: concatenation, rep, gsub, buffers via table.concat.
local function strings(rnd)
  local acc = 0
  for round = 1, 5 do
    local parts = {}
    for i = 1, 20000 do
      parts[i] = string.rep(string.char(97 + rnd(26)), rnd(12) + 1) .. i
    end
    local s = table.concat(parts, ",")
    s = s:gsub("(%a+)(%d)", "%2%1"):upper()
    local count = 0
    for word in s:gmatch("[^,]+") do
      count = count + 1
      if count % 101 == 0 then acc = fold_string(acc, word) end
    end
    acc = fold(acc, count + #s + round)
  end
  return acc
end

-- Many small objects with metatables and closures, dropped every round.
local Vec = {}
Vec.__index = Vec
Vec.__add = function(a, b) return setmetatable({ x = a.x + b.x, y = a.y + b.y }, Vec) end
local function vec(x, y) return setmetatable({ x = x, y = y }, Vec) end

local function objects(rnd)
  local acc = 0
  for _ = 1, 10 do
    local sum = vec(0, 0)
    local fns = {}
    for i = 1, 20000 do
      local v = vec(rnd(100), rnd(100))
      sum = sum + v
      fns[i % 500 + 1] = function() return v.x * i end
    end
    for i = 1, #fns do acc = (acc + fns[i]()) & MASK end
    acc = fold(fold(acc, sum.x), sum.y)
    collectgarbage("collect")
  end
  return acc
end

-- Coroutines, each with its own stack, created and abandoned.
local function coroutines(rnd)
  local acc = 0
  for i = 1, 3000 do
    local co = coroutine.wrap(function(n)
      local t = {}
      for j = 1, n do t[j] = j * i; coroutine.yield(#t) end
      return -1
    end)
    local steps = rnd(20) + 1
    acc = fold(acc, co(steps))
    for _ = 2, rnd(steps) + 1 do acc = fold(acc, co()) end
  end
  return acc
end

local rnd = lcg(20240601)
local phases = {
  { "arrays", arrays }, { "hashes", hashes }, { "strings", strings },
  { "objects", objects }, { "coroutines", coroutines },
}
local overall = 0
for _, phase in ipairs(phases) do
  local result = phase[2](rnd)
  overall = fold(overall, result)
  print(string.format("%s: %08x", phase[1], result))
end
print(string.format("overall: %08x", overall))
