-- dispatch.matching's rules in Lua, for the ranking Redis does next to its GEO index (nearby.lua);
-- tests/integration/test_ranked_nearby.py holds them to matching.rank's, number for number.

local floor, max, tonumber = math.floor, math.max, tonumber

-- Python's round(distance, 1), as tenths: the exact value of the double rounded to the nearest tenth,
-- a tie to the even one. Far from a tie 10 * distance decides (its rounding error is below 1e-12);
-- near one, 10 * distance is worked out exactly, as s + e (8x and 2x are exact, and Knuth's two-sum
-- gives their sum's rounding error), so that no rounding of ours decides it.
local function tenths(distance)
  local s = 10 * distance
  local whole = floor(s)
  local part = s - whole
  if part < 0.5 - 1e-9 then
    return whole
  elseif part > 0.5 + 1e-9 then
    return whole + 1
  end
  local a, b = 8 * distance, 2 * distance
  s = a + b
  local bv = s - a
  local e = (a - (s - bv)) + (b - bv)
  whole = floor(s)
  local above_half = (s - whole - 0.5) + e
  if above_half > 0 or (above_half == 0 and whole % 2 == 1) then
    return whole + 1
  end
  return whole
end

-- matching.reaches: within the worker's own radius (or the default), or within the round's reach.
local function reaches(distance, own_radius, default_radius, reach)
  if not own_radius or own_radius == 0 then
    own_radius = default_radius
  end
  return distance <= max(own_radius, reach)
end

-- Candidates as columns, one entry a candidate, added from the strings Redis holds (false or "":
-- not set): id, distance (km) as tenths, rating, jobs today.
local function columns()
  return { id = {}, tenths = {}, rating = {}, jobs = {} }
end

local function add(c, id, km, rating, jobs)
  local n = #c.id + 1
  c.id[n] = tonumber(id)
  c.tenths[n] = tenths(tonumber(km))
  c.rating[n] = (rating and tonumber(rating)) or 0
  c.jobs[n] = (jobs and tonumber(jobs)) or 0
end

-- matching._order: nearest (to 100 m), best rated (none: 0), fewest jobs today, lowest id.
local function before(c, x, y)
  local tx, ty = c.tenths[x], c.tenths[y]
  if tx ~= ty then
    return tx < ty
  end
  local rx, ry = c.rating[x], c.rating[y]
  if rx ~= ry then
    return rx > ry
  end
  local jx, jy = c.jobs[x], c.jobs[y]
  if jx ~= jy then
    return jx < jy
  end
  return c.id[x] < c.id[y]
end

-- The candidates' places in `c`, best first, sorted by insertion: nearby.lua adds them nearest
-- first, so each moves at most past the few as near as itself (to 100 m).
local function rank(c)
  local order = {}
  for i = 1, #c.id do
    local j = i - 1
    while j >= 1 and before(c, i, order[j]) do
      order[j + 1] = order[j]
      j = j - 1
    end
    order[j + 1] = i
  end
  return order
end
