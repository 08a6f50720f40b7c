-- ADMIT
-- KEYS: live (zset session -> lease end), new sessions this minute (string), windows...
-- ARGV: now, session, lease, max live (-1: none), max new (-1: none),
--       time left in the minute, budgets (see read_budgets)
-- Returns {1, 0, 0} admitted, {0, 1, budget} budget spent,
-- {0, 2, 0} too many live sessions, {0, 3, 0} too many new sessions.
local session, lease = ARGV[2], tonumber(ARGV[3])
local max_live, max_new = tonumber(ARGV[4]), tonumber(ARGV[5])
local windows, budgets = read_budgets(7, 2)

local spent_budget = exhausted(windows, budgets)
if spent_budget > 0 then return {0, 1, spent_budget} end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
if redis.call('ZSCORE', KEYS[1], session) then
  redis.call('ZADD', KEYS[1], int(now + lease), session)
  redis.call('PEXPIRE', KEYS[1], int(lease * 2))
  return {1, 0, 0}
end
if max_live >= 0 and redis.call('ZCARD', KEYS[1]) >= max_live then
  return {0, 2, 0}
end
if max_new >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= max_new then
  return {0, 3, 0}
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], int(now + lease), session)
redis.call('PEXPIRE', KEYS[1], int(lease * 2))
return {1, 0, 0}
