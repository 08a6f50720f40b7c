-- A deployment failed: count the failure in a row and cool it down.
-- KEYS[1] failures in a row, KEYS[2] the cooldown (present while it lasts)
-- ARGV[1] first cooldown (ms), ARGV[2] longest cooldown (ms),
-- ARGV[3] jitter in [0, 1): how much of the backoff's second half is kept,
-- ARGV[4] the wait Retry-After asked for (ms, 0 when none),
-- ARGV[5] how long the count outlives the cooldown (ms)
-- Returns the cooldown (ms).
local count = redis.call('INCR', KEYS[1])
local base = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local full = base
local doubled = 1
while doubled < count and full < max do
  full = full * 2
  doubled = doubled + 1
end
if full > max then full = max end
local wait = math.floor(full / 2 + (full / 2) * tonumber(ARGV[3]))
local retry_after = tonumber(ARGV[4])
if retry_after > wait then wait = retry_after end
if wait < 1 then wait = 1 end
redis.call('SET', KEYS[2], count, 'PX', wait)
redis.call('PEXPIRE', KEYS[1], wait + tonumber(ARGV[5]))
return wait
