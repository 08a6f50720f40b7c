-- BALANCE
-- KEYS: held, windows...
-- ARGV: now, budgets (see read_budgets)
-- Returns {held t, a, u, spent of each budget...}.
local windows, budgets = read_budgets(2, 1)
local held = redis.call('HMGET', KEYS[1], 't', 'a', 'u')
local out = {}
for m = 1, 3 do out[m] = math.max(0, tonumber(held[m] or '0')) end
for j, b in ipairs(budgets) do out[3 + j] = spent(windows, b) end
return out
