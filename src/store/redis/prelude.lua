-- Shared by every script (prepended to each). The rules are those of
-- src/store/ledger.rs; times are milliseconds since the Unix epoch given
-- by the caller in ARGV[1].
local now = tonumber(ARGV[1])
local FIELDS = {'t', 'a', 'u'}
local REMEMBER = 86400000

-- Integers as Redis arguments: never in exponent notation.
local function int(n)
  return string.format('%d', n)
end

-- "t a u ..." as numbers.
local function amounts(text)
  local t, a, u = string.match(text, '^(%d+) (%d+) (%d+)')
  return {tonumber(t), tonumber(a), tonumber(u)}
end

-- The budget windows and budgets from ARGV[at]: the window count, one
-- time-to-live per window (0: none), the budget count, then per budget its
-- window (1-based), meter field and cap. Window keys are KEYS[base + i].
local function read_budgets(at, base)
  local windows, budgets = {}, {}
  local nwin = tonumber(ARGV[at])
  for i = 1, nwin do
    windows[i] = {key = KEYS[base + i], ttl = tonumber(ARGV[at + i])}
  end
  at = at + nwin + 1
  for j = 1, tonumber(ARGV[at]) do
    budgets[j] = {
      win = tonumber(ARGV[at + 3 * j - 2]),
      field = ARGV[at + 3 * j - 1],
      max = tonumber(ARGV[at + 3 * j]),
    }
  end
  return windows, budgets
end

local function spent(windows, budget)
  return tonumber(redis.call('HGET', windows[budget.win].key, budget.field) or '0')
end

-- Adds `amounts` to every window.
local function charge(windows, add)
  for _, w in ipairs(windows) do
    for m = 1, 3 do
      if add[m] > 0 then
        redis.call('HINCRBY', w.key, FIELDS[m], int(add[m]))
      end
    end
    if w.ttl > 0 then
      redis.call('PEXPIRE', w.key, int(w.ttl))
    end
  end
end

-- The first budget whose window is spent, or 0.
local function exhausted(windows, budgets)
  for j, b in ipairs(budgets) do
    if spent(windows, b) >= b.max then
      return j
    end
  end
  return 0
end

local function release(held_key, held)
  for m = 1, 3 do
    if held[m] > 0 then
      redis.call('HINCRBY', held_key, FIELDS[m], int(-held[m]))
    end
  end
end
