--[[ apply.lua: apply one billing event atomically.

Claims the event, checks that the pair state it was decided on is still current, writes the
new pair state, then books every unit the event created, changed or voided: its place in an
ordered bucket (free allowance or volume tiers), its money, the usage counters, the month's
record hash and a record version on the feed stream.

Units that a shift moves across a tier boundary are repriced here too (a correction: the same
record_id with a higher version). Their keys come from the bucket member (".. | record_id"),
the unit key prefix below, and the keys the unit stored when it was booked; all key names are
made by Python's keys module.

KEYS[1]  claim key of the event                 (SET EX; existence = already applied)
KEYS[2]  pair state hash {v = version, h = history JSON}
KEYS[3]  records feed stream (every record version, for downstream consumers)
ARGV[1]  expected pair version token ("" when the pair is new)
ARGV[2]  new version token (unique per write, so that a stale decision can never match)
ARGV[3]  new history JSON
ARGV[4]  claim TTL, seconds
ARGV[5]  pair TTL, seconds
ARGV[6]  feed MAXLEN (approximate trimming)
ARGV[7]  unit key prefix (unit key = prefix .. record_id)
ARGV[8]  number of unit operations N
ARGV[9 .. 8+N]   unit operations, JSON each:
           {action = "put" | "void", rec = {record fields; money is set here},
            keys = {unit, records, usage, bucket ("" = none), index},
            member, score, tiers = [{to, rate, billed, free, label}],
            ttl = {unit, bucket, keep (seconds from now)}}
ARGV[9+N ..]     pending operations, JSON each: {key, field, value (null = delete)}

Returns {0} duplicate, {1, current_version} conflict, {2, record_versions_written} applied.
]]

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
local version = redis.call('HGET', KEYS[2], 'v') or ''
if version ~= ARGV[1] then
  return {1, version}
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[4])
redis.call('HSET', KEYS[2], 'v', ARGV[2], 'h', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])

local feed, feed_maxlen, unit_prefix = KEYS[3], ARGV[6], ARGV[7]
local null = cjson.null
local written = 0

local function present(v)
  return v ~= nil and v ~= null
end

local function text(v)
  return present(v) and tostring(v) or ''
end

-- The usage counter a record is counted under (parsed back by Python's usage module).
local function line_of(rec)
  return table.concat({rec.category, rec.market, rec.billable and '1' or '0',
    text(rec.free_reason), text(rec.tier), text(rec.rate), text(rec.billed_rate),
    rec.currency}, '|')
end

-- Money of a record placed in `tier` (a tier with `free` is a free allowance).
local function price(rec, tier)
  local free = present(tier.free) and tier.free or rec.rule_free_reason
  rec.billable = not present(free)
  rec.free_reason = present(free) and free or null
  rec.rate = present(tier.rate) and tier.rate or null
  rec.billed_rate = present(tier.billed) and tier.billed or null
  rec.tier = present(tier.label) and tier.label or null
  if rec.billable then
    rec.cost, rec.billed_cost = rec.rate, rec.billed_rate
  else
    rec.cost, rec.billed_cost = '0', '0'
  end
end

local function count(state, rec, delta)
  if not rec.void then
    redis.call('HINCRBY', state.keys.usage, line_of(rec), delta)
  end
end

local function save(state, rec)
  local body = cjson.encode(rec)
  redis.call('SET', state.keys.unit, cjson.encode(state), 'EX', state.ttl.unit)
  redis.call('HSET', state.keys.records, rec.record_id, body)
  redis.call('EXPIRE', state.keys.records, state.ttl.keep)
  redis.call('EXPIRE', state.keys.usage, state.ttl.keep)
  redis.call('XADD', feed, 'MAXLEN', '~', feed_maxlen, '*', 'r', body)
  written = written + 1
end

local function load(unit_key)
  local raw = redis.call('GET', unit_key)
  if not raw then
    return nil, nil
  end
  local state = cjson.decode(raw)
  local body = redis.call('HGET', state.keys.records, string.match(unit_key, '[%w]+$'))
  if not body then
    return nil, nil
  end
  return state, cjson.decode(body)
end

local function tier_at(tiers, position)
  for i, tier in ipairs(tiers) do
    if not present(tier.to) or position <= tier.to then
      return i
    end
  end
  return #tiers
end

-- A unit that a shift moved across a boundary gets its new money and a new version.
local function reprice(member, tier)
  local state, rec = load(unit_prefix .. string.match(member, '|([%w]+)$'))
  if not state then
    return
  end
  local before = line_of(rec)
  price(rec, tier)
  if line_of(rec) == before then
    return
  end
  redis.call('HINCRBY', state.keys.usage, before, -1)
  count(state, rec, 1)
  rec.version = rec.version + 1
  save(state, rec)
end

local function tiers_of(bucket)
  return cjson.decode(redis.call('GET', bucket .. ':t') or '[]')
end

-- Take a unit out of its bucket; the units behind it move one place forward.
local function unbook(state)
  local bucket = state.keys.bucket
  if bucket == '' then
    return
  end
  local rank = redis.call('ZRANK', bucket, state.member)
  if not rank then
    return
  end
  local size = redis.call('ZCARD', bucket)
  redis.call('ZREM', bucket, state.member)
  local k, tiers = rank + 1, tiers_of(bucket)
  for i, tier in ipairs(tiers) do
    local b = tier.to
    if present(b) and b >= k and size - 1 >= b then
      reprice(redis.call('ZRANGE', bucket, b - 1, b - 1)[1], tiers[i])
    end
  end
end

-- Put a unit in its bucket (if it has one) and price it by its place; the units behind it
-- move one place back.
local function book(state, rec, tiers, same_place)
  local bucket = state.keys.bucket
  if bucket == '' then
    price(rec, tiers[1])
    return
  end
  redis.call('SET', bucket .. ':t', cjson.encode(tiers), 'EX', state.ttl.bucket)
  if not same_place then
    redis.call('ZADD', bucket, state.score, state.member)
    redis.call('EXPIRE', bucket, state.ttl.bucket)
  end
  local k = redis.call('ZRANK', bucket, state.member) + 1
  price(rec, tiers[tier_at(tiers, k)])
  if same_place then
    return
  end
  local size = redis.call('ZCARD', bucket)
  for i, tier in ipairs(tiers) do
    local b = tier.to
    if present(b) and b >= k and size > b and tiers[i + 1] then
      reprice(redis.call('ZRANGE', bucket, b, b)[1], tiers[i + 1])
    end
  end
end

local function apply_unit(op)
  local old, old_rec = load(op.keys.unit)
  local state = {keys = op.keys, member = op.member, score = op.score, ttl = op.ttl}
  local rec = op.rec
  local same_place = false
  if old then
    same_place = not old_rec.void and old.keys.bucket == state.keys.bucket
      and old.member == state.member and tonumber(old.score) == tonumber(state.score)
    if not same_place then
      unbook(old)
    end
    count(old, old_rec, -1)
    if old.keys.records ~= state.keys.records and op.action ~= 'void' then
      redis.call('HDEL', old.keys.records, old_rec.record_id)  -- moved to another month
    end
  end
  if op.action == 'void' then
    if not old or old_rec.void then
      return
    end
    state, rec = old, old_rec
    rec.void, rec.billable, rec.cost, rec.billed_cost = true, false, '0', '0'
  else
    rec.void = false
    book(state, rec, op.tiers, same_place)
    count(state, rec, 1)
    redis.call('SADD', state.keys.index, rec.waba_id .. '|' .. rec.billing_month)
  end
  rec.version = old and (old_rec.version + 1) or 1
  save(state, rec)
end

local n = tonumber(ARGV[8])
for i = 9, 8 + n do
  apply_unit(cjson.decode(ARGV[i]))
end
for i = 9 + n, #ARGV do
  local op = cjson.decode(ARGV[i])
  if present(op.value) then
    redis.call('HSET', op.key, op.field, op.value)
  else
    redis.call('HDEL', op.key, op.field)
  end
end
return {2, written}
