-- The workers of one skill near a spot, ranked by matching.lua's rules, in one round trip
-- (geoindex.ranked): the GEO search, the reads the ranking needs, the filter and the order.
-- KEYS: the skill's GEO set, the radius hash, the rating hash, today's jobs hash.
-- ARGV: longitude, latitude, search radius (km), workers read at most, default radius (km),
--       the round's reach (km; 0: none), how many of the ranking are wanted (0: all).
-- Returns one line a worker, best first, only those who reach the spot: "id,distance,own radius,
-- rating,jobs today", each as Redis holds it ("" where not set); the first of the ranking only, when
-- only those are wanted.

local found = redis.call("GEOSEARCH", KEYS[1], "FROMLONLAT", ARGV[1], ARGV[2], "BYRADIUS", ARGV[3], "km",
  "ASC", "COUNT", ARGV[4], "WITHDIST")
if #found == 0 then
  return ""
end
local members = {}
for i = 1, #found do
  members[i] = found[i][1]
end
local radii = redis.call("HMGET", KEYS[2], unpack(members))
local default_radius, reach = tonumber(ARGV[5]), tonumber(ARGV[6])

local near, who = {}, {} -- those who reach the spot: their places in `found`, their ids
for i = 1, #found do
  local radius = radii[i]
  if reaches(tonumber(found[i][2]), radius and tonumber(radius), default_radius, reach) then
    near[#near + 1] = i
    who[#who + 1] = members[i]
  end
end
if #near == 0 then
  return ""
end
-- Of those, only as many as wanted can come first, with those as near as the last of them (to 100 m),
-- who may be better rated: the rest need not be read nor ranked.
local wanted = tonumber(ARGV[7])
if wanted > 0 and #near > wanted then
  local last, keep = tenths(tonumber(found[near[wanted]][2])), wanted
  while keep < #near and tenths(tonumber(found[near[keep + 1]][2])) == last do
    keep = keep + 1
  end
  for k = #near, keep + 1, -1 do
    near[k], who[k] = nil, nil
  end
end
local ratings = redis.call("HMGET", KEYS[3], unpack(who))
local jobs = redis.call("HMGET", KEYS[4], unpack(who))

local c = columns()
for k = 1, #near do
  add(c, who[k], found[near[k]][2], ratings[k], jobs[k])
end
local reply = {}
for place, k in ipairs(rank(c)) do
  if wanted > 0 and place > wanted then
    break
  end
  local i = near[k]
  reply[place] = who[k] .. "," .. found[i][2] .. "," .. (radii[i] or "") .. "," .. (ratings[k] or "") .. ","
    .. (jobs[k] or "")
end
return table.concat(reply, "\n")
