--[[ calls.lua: whole-call minute tiers (rule book 8.1.6 to 8.1.8), between pricing.lua and
apply.lua.

A charged call's bucket (portfolio x callee market x month) is a sorted set like the others
(score = charge time; member = "<call_id>|<pulses>|<waba_id>|<month>|<record_id>", so equal times
go by call id), weighted: a call's position is the bucket's running total of pulses (tenths of a
minute) AFTER it, and the first place of its own table whose `to` holds that total (inclusive)
prices the WHOLE call (its `cost` is this call's cost at that tier). Past the last place the call
is unrated. The bucket's companion key (its "bounds" key) holds the bucket's total pulses. A call
booked or taken out moves the calls after it (each a correction: its running total is in its
record); apply.lua fills
`calls_env` (the total key of a bucket, and its reprice) before any unit is applied.
]]

local calls_env = {}

local function call_weight(member)
  return tonumber(string.match(member, '^[^|]*|(%d+)|'))
end

local function minutes_text(pulses)
  return string.format('%d.%d', math.floor(pulses / 10), pulses % 10)
end

-- Sets rec's billable, free_reason, tier, rate, billed_rate, cost, billed_cost and
-- tier_minutes_after for the running total `after` (nil: the call is in no bucket).
local function price_call(rec, after)
  rec.tier_minutes_after = after and minutes_text(after) or null
  rec.rate, rec.billed_rate, rec.tier, rec.cost, rec.billed_cost = null, null, null, null, null
  if present(rec.rule_free_reason) then
    rec.billable, rec.free_reason, rec.cost, rec.billed_cost = false, rec.rule_free_reason, '0', '0'
    return
  end
  rec.billable, rec.free_reason = true, null
  for _, place in ipairs(rec.places or {}) do
    if not present(place.to) or (after and after <= place.to) then
      rec.rate, rec.billed_rate, rec.tier = place.rate, place.billed, place.label
      rec.cost, rec.billed_cost = place.cost, place.billed_cost
      return
    end
  end
end

-- The calls from rank `from` (0-based) to the end: each repriced at its running total (when
-- `moved`), the last first; returns the total before the call at `from`.
local function walk_tail(bucket, from, total, moved)
  local tail = redis.call('ZRANGE', bucket, from, -1)
  local after = total
  for i = #tail, 1, -1 do
    if moved then
      calls_env.reprice(tail[i], after)
    end
    after = after - call_weight(tail[i])
  end
  return after
end

local function book_call(rec, same_place, bucket_ttl)
  local bucket = rec.bucket
  if bucket == '' then
    price_call(rec, nil)
    return
  end
  local total_key = calls_env.total_key(bucket)
  local total
  if same_place then
    total = tonumber(redis.call('GET', total_key) or '0')
  else
    redis.call('ZADD', bucket, rec.score, rec.member)
    total = redis.call('INCRBY', total_key, rec.weight)
  end
  redis.call('EXPIRE', bucket, bucket_ttl)
  redis.call('EXPIRE', total_key, bucket_ttl)
  local rank = redis.call('ZRANK', bucket, rec.member)
  price_call(rec, walk_tail(bucket, rank + 1, total, not same_place))
end

local function unbook_call(old)
  local bucket = old.bucket
  if bucket == '' then
    return
  end
  local rank = redis.call('ZRANK', bucket, old.member)
  if not rank then
    return
  end
  redis.call('ZREM', bucket, old.member)
  local total = redis.call('DECRBY', calls_env.total_key(bucket), call_weight(old.member))
  walk_tail(bucket, rank, total, true)
end
