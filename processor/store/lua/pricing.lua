--[[ pricing.lua: pricing one unit at its place in a bucket (prepended to apply.lua).

The Lua twin of processor/core/pricing.py, run against the same table of cases
(tests/data/pricing_cases.json). A unit at the k-th place (1-based) of its bucket takes the
first place of its OWN table (rec.places: [{to, rate, billed, free, label}]) whose `to` is at
least k (no `to`: unbounded). A free place (allowance) makes it free; a tier place sets its
rate, billed rate and tier label; otherwise the unit keeps its list rate. Free units cost 0.
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
  local place = places[place_at(places, position)]
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
