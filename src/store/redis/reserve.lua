-- RESERVE
-- KEYS: reservations (hash id -> "t a u expires"), held (hash), swept (hash), windows...
-- ARGV: now, id, ttl, want t a u, min t a u, budgets (see read_budgets)
-- Returns {1, granted t, a, u} or {0, refusing budget}.
local id, ttl = ARGV[2], tonumber(ARGV[3])
local want = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local least = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local windows, budgets = read_budgets(10, 3)

-- Reservations whose holder stopped settling are charged in full.
local open = redis.call('HGETALL', KEYS[1])
for i = 1, #open, 2 do
  local parts = {}
  for n in string.gmatch(open[i + 1], '%d+') do parts[#parts + 1] = tonumber(n) end
  if parts[4] <= now then
    local held = {parts[1], parts[2], parts[3]}
    release(KEYS[2], held)
    charge(windows, held)
    redis.call('HSET', KEYS[3], open[i], int(held[1]) .. ' ' .. int(held[2]) .. ' ' .. int(held[3]) .. ' ' .. int(now))
    redis.call('PEXPIRE', KEYS[3], REMEMBER)
    redis.call('HDEL', KEYS[1], open[i])
  end
end

local held = redis.call('HMGET', KEYS[2], 't', 'a', 'u')
for m = 1, 3 do held[m] = math.max(0, tonumber(held[m] or '0')) end

local granted = {}
for m = 1, 3 do
  local cap, by = nil, 0
  for j, b in ipairs(budgets) do
    if b.field == FIELDS[m] then
      local left = math.max(0, b.max - spent(windows, b) - held[m])
      if cap == nil or left < cap then cap, by = left, j end
    end
  end
  if cap == nil then
    granted[m] = want[m]
  else
    granted[m] = math.min(want[m], cap)
    if granted[m] < math.min(least[m], want[m]) then
      return {0, by}
    end
  end
end

local mine = {0, 0, 0}
local previous = redis.call('HGET', KEYS[1], id)
if previous then mine = amounts(previous) end
for m = 1, 3 do
  mine[m] = mine[m] + granted[m]
  if granted[m] > 0 then redis.call('HINCRBY', KEYS[2], FIELDS[m], int(granted[m])) end
end
redis.call('HSET', KEYS[1], id, int(mine[1]) .. ' ' .. int(mine[2]) .. ' ' .. int(mine[3]) .. ' ' .. int(now + ttl))
redis.call('PEXPIRE', KEYS[1], int(ttl + REMEMBER))
redis.call('PEXPIRE', KEYS[2], int(ttl + REMEMBER))
return {1, granted[1], granted[2], granted[3]}
