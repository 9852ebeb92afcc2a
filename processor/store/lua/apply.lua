--[[ apply.lua: apply new billing events of one pair atomically.

Claims the events, checks that the pair state they were decided on is still current, writes the
new pair state, then books every unit the event created, changed or voided: its place in an
ordered bucket (free allowance or volume tiers), its money, the usage counter, the month's
record hash and a record version on the feed stream.

A unit that a shift moves across a tier or allowance boundary of its own table (each unit
carries the table of its own currency and charge date) is repriced here too (a
correction: the same record_id, a higher version). Bucket members are
"<wamid>|<waba_id>|<month>|<record_id>", so that its record is found from the member.

No key name is built here: every key the script touches is passed in KEYS (on a Redis Cluster
they share one hash tag, chosen in processor/store/keys.py), and ARGV[8] says which KEYS hold
the records and usage of a "<waba_id>|<month>" and the bounds of a bucket. A key used but not
passed is an error (nothing is written).

KEYS[1]  pair state hash {v = version token, h = history JSON}
KEYS[2]  records feed stream (every record version, for downstream consumers; one per tag)
KEYS[3]  set of "waba_id|month" that have records (one per tag)
KEYS[4 .. 3 + n]      claim keys (n = ARGV[7]) of the events      (SET EX; existence = already applied)
KEYS[4 + n ..]       records, usage, bucket, bounds and pending keys the operations may touch
ARGV[1]  expected pair version token ("" when the pair is new)
ARGV[2]  new version token (unique per write, so that a stale decision can never match)
ARGV[3]  new history JSON
ARGV[4]  claim TTL, seconds
ARGV[5]  pair TTL, seconds
ARGV[6]  feed MAXLEN (approximate trimming)
ARGV[7]  number of claim keys
ARGV[8]  key index, JSON: {m = {"<waba_id>|<month>": [records, usage, daily usage keys]},
                           t = {bucket key: bounds key}, legacy = true when a unit booked by
                           an older version may sit in a bucket not listed in t (standalone)}
ARGV[9]  bucket TTL, seconds
ARGV[10] unit operations, a JSON array of:
           {action = "put" | "void", rid, old = records key of the stored version or "",
            rec = {record fields; money is set here; bucket, member, score: its place;
                   places = its own table [{to, rate, billed, free, label}], pricing.lua}}
ARGV[11] pending operations, a JSON array of: {key, field, value (null = delete)}
ARGV[12] lifetime of a month's records, usage and pending list after a change, seconds

Returns {0, i...} when the claims i (0-based) exist already: nothing applied;
        {1, current_version} on a version conflict: nothing applied;
        {2, record_versions_written, units_not_repriced} applied (a unit of a WABA that
        left the portfolio is not repriced by a shift: rerate its month).
]]

local last_claim = 3 + tonumber(ARGV[7])
local taken = {}
for i = 4, last_claim do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    taken[#taken + 1] = i - 4
  end
end
if #taken > 0 then
  return {0, unpack(taken)}
end
local version = redis.call('HGET', KEYS[1], 'v') or ''
if version ~= ARGV[1] then
  return {1, version}
end

local feed, feed_maxlen, months, keep = KEYS[2], ARGV[6], KEYS[3], ARGV[12]
local index, bucket_ttl = cjson.decode(ARGV[8]), ARGV[9]
local written, skipped = 0, 0
local touched = {}  -- "waba_id:month" of the records written

local declared = {}
for i = 1, #KEYS do
  declared[KEYS[i]] = true
end

-- A key name from the operations or the index, refused unless it was passed in KEYS.
local function key(name)
  if not declared[name] then
    error('apply.lua: key not passed in KEYS: ' .. tostring(name))
  end
  return name
end

local function month_keys(waba, month)
  local found = index.m[waba .. '|' .. month]
  if not found then
    error('apply.lua: no records key passed for ' .. waba .. '|' .. month)
  end
  return found
end

local function text(v)
  return present(v) and tostring(v) or ''
end

local function records_key(rec)
  return key(month_keys(rec.waba_id, rec.billing_month)[1])
end

local function usage_key(rec)
  return key(month_keys(rec.waba_id, rec.billing_month)[2])
end

local function bounds_key(bucket)
  local found = index.t[bucket]
  if found then
    return key(found)
  end
  if index.legacy then  -- standalone: a unit booked before calls listed its bucket
    return bucket .. ':t'
  end
  error('apply.lua: no bounds key passed for ' .. bucket)
end

-- The dashboard's breakdown of the month's usage by day and number (Keys.usage_daily).
local function daily_key(rec)
  return key(month_keys(rec.waba_id, rec.billing_month)[3])
end

-- The usage counter a record is counted under (parsed back by Python's queries module).
local function line_of(rec)
  return table.concat({rec.category, rec.market, rec.billable and '1' or '0',
    text(rec.free_reason), text(rec.tier), text(rec.rate), text(rec.billed_rate),
    rec.currency}, '|')
end

-- Count a record under usage `line`, and in the dashboard's breakdown by local day and
-- business number (records written before the breakdown existed have no day: not in it).
local function tally(rec, line, delta)
  redis.call('HINCRBY', usage_key(rec), line, delta)
  if rec.kind == 'call' then  -- call lines count minutes too, in pulses (queries.py)
    redis.call('HINCRBY', usage_key(rec), 'm|' .. line, delta * rec.pulses)
  end
  if present(rec.day) then
    local flag = present(rec.discrepancy) and '1' or '0'
    redis.call('HINCRBY', daily_key(rec),
      table.concat({rec.day, rec.phone_number_id, flag, line}, '|'), delta)
    if rec.kind == 'call' then  -- its minutes too (flag 0: minutes are not records)
      redis.call('HINCRBY', daily_key(rec),
        table.concat({rec.day, rec.phone_number_id, '0', 'm', line}, '|'), delta * rec.pulses)
    end
  end
end

local function count(rec, delta)
  if not rec.void then
    tally(rec, line_of(rec), delta)
  end
end

local function save(rec)
  local body = cjson.encode(rec)
  touched[rec.waba_id .. ':' .. rec.billing_month] = rec
  redis.call('HSET', records_key(rec), rec.record_id, body)
  redis.call('XADD', feed, 'MAXLEN', '~', feed_maxlen, '*', 'r', body)
  written = written + 1
end

-- A unit that a shift moved to `position` is priced again from its own places; if its money
-- (or its allowance discrepancy, pricing.lua) changed it gets a new version. (A record booked before records kept their places has none:
-- `wa-billing rerate` its month.)
local function reprice(member, position)
  local waba, month, rid = string.match(member, '|([^|]+)|([^|]+)|([^|]+)$')
  local found = index.m[waba .. '|' .. month]
  if not found then  -- a WABA no longer in this portfolio: `wa-billing rerate` the month
    skipped = skipped + 1
    return
  end
  local body = redis.call('HGET', key(found[1]), rid)
  if not body then
    return
  end
  local rec = cjson.decode(body)
  if not present(rec.places) then
    return
  end
  local before, marked, was_after = line_of(rec), rec.discrepancy, rec.tier_minutes_after
  if rec.kind == 'call' then  -- position: the bucket's running total of pulses (calls.lua)
    price_call(rec, position)
  else
    price_at(rec, rec.places, position)
  end
  if line_of(rec) == before and rec.discrepancy == marked and rec.tier_minutes_after == was_after then
    return  -- (a call's running total is part of its record: a new total, a new version)
  end
  local now = rec.discrepancy  -- the breakdown counted it under its old discrepancy flag
  rec.discrepancy = marked
  tally(rec, before, -1)
  rec.discrepancy = now
  count(rec, 1)
  rec.version = rec.version + 1
  save(rec)
end

calls_env.total_key, calls_env.reprice = bounds_key, reprice

-- The positions where some member's place changes: the union of the `to`s of the tables of
-- every unit ever booked in the bucket (stored beside it; an older version stored one table).
local function bounds_of(bucket)
  local out = {}
  for _, b in ipairs(cjson.decode(redis.call('GET', bounds_key(bucket)) or '[]')) do
    if type(b) == 'table' then
      b = b.to
    end
    if present(b) then
      out[#out + 1] = b
    end
  end
  return out
end

local function add_bounds(bucket, places)
  local seen, all = {}, {}
  for _, b in ipairs(bounds_of(bucket)) do
    seen[b], all[#all + 1] = true, b
  end
  for _, place in ipairs(places) do
    if present(place.to) and not seen[place.to] then
      seen[place.to], all[#all + 1] = true, place.to
    end
  end
  table.sort(all)
  redis.call('SET', bounds_key(bucket), #all > 0 and cjson.encode(all) or '[]', 'EX', bucket_ttl)
  return all
end

-- Take a unit out of its bucket; the units behind it move one place forward (the one now at
-- a bound b, from b + 1, may change place).
local function unbook(rec)
  if rec.kind == 'call' then
    return unbook_call(rec)
  end
  local bucket = rec.bucket
  if bucket == '' then
    return
  end
  if not index.legacy then
    key(bucket)
  end
  local rank = redis.call('ZRANK', bucket, rec.member)
  if not rank then
    return
  end
  local size = redis.call('ZCARD', bucket)
  redis.call('ZREM', bucket, rec.member)
  local k = rank + 1
  for _, b in ipairs(bounds_of(bucket)) do
    if b >= k and size - 1 >= b then
      reprice(redis.call('ZRANGE', bucket, b - 1, b - 1)[1], b)
    end
  end
end

-- Put a unit in its bucket (if it has one) and price it by its place in its own table; the
-- units behind it move one place back (the one now at b + 1, from a bound b, may change place).
local function book(rec, same_place)
  if rec.kind == 'call' then
    return book_call(rec, same_place, bucket_ttl)
  end
  local bucket = rec.bucket
  if bucket == '' then
    price_at(rec, rec.places, 1)
    return
  end
  key(bucket)
  local all = add_bounds(bucket, rec.places)
  if not same_place then
    redis.call('ZADD', bucket, rec.score, rec.member)
    redis.call('EXPIRE', bucket, bucket_ttl)
  end
  local k = redis.call('ZRANK', bucket, rec.member) + 1
  price_at(rec, rec.places, k)
  if same_place then
    return
  end
  local size = redis.call('ZCARD', bucket)
  for _, b in ipairs(all) do
    if b >= k and size > b then
      reprice(redis.call('ZRANGE', bucket, b, b)[1], b + 1)
    end
  end
end

local function apply_unit(op)
  local old
  if op.old ~= '' then
    local body = redis.call('HGET', key(op.old), op.rid)
    old = body and cjson.decode(body)
  end
  local rec = op.rec
  local same_place = false
  if old and not old.void then
    same_place = rec ~= nil and old.bucket == rec.bucket and old.member == rec.member
      and tonumber(old.score) == tonumber(rec.score)
    if not same_place then
      unbook(old)
    end
    count(old, -1)
    if rec ~= nil and records_key(old) ~= records_key(rec) then
      redis.call('HDEL', records_key(old), op.rid)  -- the unit moved to another month
    end
  end
  if op.action == 'void' then
    if not old or old.void then
      return
    end
    rec = old
    rec.void, rec.billable, rec.cost, rec.billed_cost = true, false, '0', '0'
  else
    rec.void = false
    book(rec, same_place)
    count(rec, 1)
  end
  rec.version = old and (old.version + 1) or 1
  save(rec)
end

-- Every key the operations name, checked before anything is written (a script that fails
-- half-way keeps what it wrote): the stored versions, their buckets, the new records' keys.
local unit_ops, pending_ops = cjson.decode(ARGV[10]), cjson.decode(ARGV[11])
local function check_record(rec)
  records_key(rec)
  usage_key(rec)
  daily_key(rec)
  if present(rec.bucket) and rec.bucket ~= '' then
    if not index.legacy then
      key(rec.bucket)
    end
    bounds_key(rec.bucket)
  end
end
for _, op in ipairs(unit_ops) do
  if op.old ~= '' then
    local body = redis.call('HGET', key(op.old), op.rid)
    if body then
      check_record(cjson.decode(body))
    end
  end
  if op.rec ~= nil then
    check_record(op.rec)
  end
end
for _, op in ipairs(pending_ops) do
  key(op.key)
end

for i = 4, last_claim do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[4])
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'h', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
for _, op in ipairs(unit_ops) do
  apply_unit(op)
end
for _, op in ipairs(pending_ops) do
  if present(op.value) then
    redis.call('HSET', key(op.key), op.field, op.value)
    redis.call('EXPIRE', op.key, keep)
  else
    redis.call('HDEL', key(op.key), op.field)
  end
end
for _, rec in pairs(touched) do  -- months written to live on, and are listed
  redis.call('EXPIRE', records_key(rec), keep)
  redis.call('EXPIRE', usage_key(rec), keep)
  redis.call('EXPIRE', daily_key(rec), keep)
  redis.call('SADD', months, rec.waba_id .. '|' .. rec.billing_month)
end
return {2, written, skipped}
