--[[ pricing.lua: pricing one unit at its place in a bucket (prepended to apply.lua).

The Lua twin of processor/core/pricing.py, run against the same table of cases
(tests/data/pricing_cases.json). A unit at the k-th place (1-based) of its bucket takes the
first place of its OWN table (rec.places: [{to, rate, billed, free, label}]) whose `to` is at
least k (no `to`: unbounded). A free place (allowance) makes it free; a tier place sets its
rate, billed rate and tier label; otherwise the unit keeps its list rate. Free units cost 0.
Where Meta said whether an allowance unit is inside the free tier (rec.meta_in_tier), Meta's
answer picks the place (first: inside; last: beyond), and the record's discrepancy is the
model's (rec.rule_discrepancy) plus service_allowance_mismatch when the place differed.
]]

local null = cjson.null

local function present(v)
  return v ~= nil and v ~= null
end

-- The index of the place of `places` that holds `position`.
local function place_at(places, position)
  for i, place in ipairs(places) do
    if not present(place.to) or position <= place.to then
      return i
    end
  end
  return #places
end

-- Sets rec's billable, free_reason, rate, billed_rate, tier, cost and billed_cost.
local function price_at(rec, places, position)
  local at = place_at(places, position)
  if present(rec.meta_in_tier) then
    local said = rec.meta_in_tier and 1 or #places
    local codes = rec.rule_discrepancy
    if said ~= at then
      codes = present(codes) and (codes .. ';service_allowance_mismatch')
        or 'service_allowance_mismatch'
    end
    rec.discrepancy = present(codes) and codes or null
    at = said
  end
  local place = places[at]
  local free = present(place.free) and place.free or rec.rule_free_reason
  rec.billable = not present(free)
  rec.free_reason = present(free) and free or null
  rec.rate = present(place.rate) and place.rate or rec.list_rate
  rec.billed_rate = present(place.billed) and place.billed or rec.list_billed_rate
  rec.tier = present(place.label) and place.label or null
  if rec.billable then
    rec.cost, rec.billed_cost = rec.rate, rec.billed_rate
  else
    rec.cost, rec.billed_cost = '0', '0'
  end
end
