-- SETTLE
-- KEYS: reservations, held, swept, settled (zset id -> time), windows...
-- ARGV: now, settlement id, reservation id ('' for none), actual t a u,
--       channel ('' for none), message, budgets (see read_budgets)
-- Returns {applied 0|1, first spent budget or 0}; publishes `message` on
-- `channel` when an applied settlement leaves a budget spent.
local windows, budgets = read_budgets(9, 4)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', int(now - REMEMBER))
if redis.call('ZADD', KEYS[4], 'NX', int(now), ARGV[2]) == 0 then
  return {0, exhausted(windows, budgets)}
end
redis.call('PEXPIRE', KEYS[4], REMEMBER)

local actual = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
if ARGV[3] ~= '' then
  local held = redis.call('HGET', KEYS[1], ARGV[3])
  if held then
    release(KEYS[2], amounts(held))
    redis.call('HDEL', KEYS[1], ARGV[3])
  else
    -- Its expiry charged it already: charge only the difference.
    local swept = redis.call('HGET', KEYS[3], ARGV[3])
    if swept then
      local charged = amounts(swept)
      for m = 1, 3 do actual[m] = math.max(0, actual[m] - charged[m]) end
      redis.call('HDEL', KEYS[3], ARGV[3])
    end
  end
end
charge(windows, actual)
local spent_budget = exhausted(windows, budgets)
if spent_budget > 0 and ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
return {1, spent_budget}
