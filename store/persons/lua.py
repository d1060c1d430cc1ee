"""The person store's Lua scripts (Redis). Field layout and rules: ``store.persons.model``; windows:
``store.persons.windows`` (the level widths below must match ``LEVELS``).

``WRITE``  KEYS: [seen zset, person/group hashes and dedupe zsets...]; ARGV[1]: JSON ``[now, ttl,
           dedupe, retention, max_props, [[hash i, dedupe i or 0, seen member or "", events]...]]`` with
           events ``[[uuid, ms, [[kind, name, value]...], [token...]]...]``. First pass (no writes): a
           hash merged elsewhere answers its target; a person that would exceed ``max_props`` aborts the
           whole call (``{"limit", i}``). Second pass applies, deduplicating by uuid, and answers
           ``{"ok", [applied or target...]}``.
``MERGE``  KEYS: [source hash, source dedupe, target hash, target dedupe, seen]; ARGV: [target id, now, ttl,
           dedupe, source id, max_props, identify 1/0] (properties only the source has join up to
           max_props). ``{"a"|"b", id}`` when the source/target was itself merged (resolve, retry); the
           target is marked identified (``_i``); ``{"kept"}`` when an identify found the source identified.
``TRACK``  KEYS: [project counters hash]; ARGV: [now, counter ids...]: when each was first tracked.
``READ``   KEYS: [person hashes..., group hashes...]; ARGV: [JSON ``[[token, first bucket per level...]
           ...]`` (the distinct count plans of the call), number of persons]. Per person ``{"",
           properties JSON, [count per plan...]}`` or ``{target}``; per group its properties JSON.
"""

from __future__ import annotations

_PREAMBLE = """
local res = {1, 60, 3600, 86400}
local function ms_of(v) return tonumber(string.sub(v, 2, string.find(v, ';', 1, true) - 1)) end
"""

WRITE = (
    _PREAMBLE
    + """
local a = cjson.decode(ARGV[1])
local now, ttl, dd, ret, maxp, ws = a[1], a[2], a[3], a[4], a[5], a[6]
local keep = {900, 93600, 2851200, ret}
local function expired(l, b) return (b + 1) * res[l] <= now - keep[l] end
-- The bucket holding second sec at the finest level from l on that still keeps it, as a field suffix
-- (level digit, bucket number); nil when every level has dropped it.
local function bucket(l, sec)
  for m = l, 4 do
    local b = math.floor(sec / res[m])
    if not expired(m, b) then return (m - 1) .. string.format('%d', b) end
  end
end
local out, meta, props = {}, {}, {}
-- First pass, no writes: redirects, and the property limit (the stored values read here are kept in
-- props[i] for the second pass: one HGET per property named in the call).
for i, w in ipairs(ws) do
  local pk = KEYS[w[1]]
  local m = redis.call('HMGET', pk, '@', '_n', '_t', '_u')
  if m[1] then
    out[i] = m[1]
  else
    out[i] = 0
    meta[i] = m
    local n = tonumber(m[2] or '0')
    local cur, added = {}, {}
    props[i] = cur
    for _, e in ipairs(w[4]) do
      for _, op in ipairs(e[3]) do
        local f = op[2]
        if cur[f] == nil then cur[f] = redis.call('HGET', pk, 'p' .. f) end
        if op[1] ~= 'u' and not cur[f] and not added[f] then
          added[f] = true
          n = n + 1
        end
      end
    end
    if n > maxp then return {'limit', i} end
  end
end
for i, w in ipairs(ws) do
  if out[i] == 0 then
    local pk = KEYS[w[1]]
    local uk = nil
    if w[2] > 0 then uk = KEYS[w[2]] end
    local cur, incr = props[i], {}
    local applied, dn, uuids = 0, 0, false
    for _, e in ipairs(w[4]) do
      local fresh = true
      if uk and e[1] ~= '' then
        fresh = redis.call('ZADD', uk, 'NX', now, e[1]) == 1
        uuids = uuids or fresh
      end
      if fresh then
        applied = applied + 1
        local ms = e[2]
        local stamp = string.format('%d', ms) .. ';'
        for _, op in ipairs(e[3]) do
          local f = op[2]
          local v = cur[f]
          local k = op[1]
          if k == 's' then
            if (not v) or string.byte(v, 1) == 111 or ms_of(v) <= ms then
              cur[f] = 's' .. stamp .. op[3]
              redis.call('HSET', pk, 'p' .. f, cur[f])
              if not v then dn = dn + 1 end
            end
          elseif k == 'o' then
            if (not v) or (string.byte(v, 1) == 111 and ms_of(v) > ms) then
              cur[f] = 'o' .. stamp .. op[3]
              redis.call('HSET', pk, 'p' .. f, cur[f])
              if not v then dn = dn + 1 end
            end
          elseif v and ms_of(v) <= ms then
            cur[f] = false
            redis.call('HDEL', pk, 'p' .. f)
            dn = dn - 1
          end
        end
        if #e[4] > 0 then
          local suffix = bucket(1, math.floor(ms / 1000))
          if suffix then
            for _, tok in ipairs(e[4]) do
              local f = 'b' .. tok .. suffix
              incr[f] = (incr[f] or 0) + 1
            end
          end
        end
      end
    end
    -- One increment per bucket the call touched (events of one person share their recent buckets).
    for f, c in pairs(incr) do redis.call('HINCRBY', pk, f, c) end
    if dn ~= 0 then redis.call('HINCRBY', pk, '_n', dn) end
    local m = meta[i]
    local trim = now >= tonumber(m[3] or '0')
    if trim then
      -- Roll buckets past their level's keep up into the coarser bucket holding them (or drop them).
      for _, f in ipairs(redis.call('HKEYS', pk)) do
        if string.byte(f, 1) == 98 then
          local l = string.byte(f, 10) - 47
          local b = tonumber(string.sub(f, 11))
          if expired(l, b) then
            local c = tonumber(redis.call('HGET', pk, f))
            redis.call('HDEL', pk, f)
            local suffix = bucket(l + 1, b * res[l])
            if suffix then redis.call('HINCRBY', pk, string.sub(f, 1, 9) .. suffix, c) end
          end
        end
      end
      if uk then redis.call('ZREMRANGEBYSCORE', uk, '-inf', now - dd) end
      -- Refreshed with the roll-up (at most every 10 minutes per person): the TTL is days long, and
      -- seen_persons needs no finer time.
      redis.call('EXPIRE', pk, ttl)
      if w[3] ~= '' then redis.call('ZADD', KEYS[1], now, w[3]) end
    end
    -- The dedupe set's TTL: set with the roll-up, and when this call added uuids and '_u' (until when
    -- the set is known to have one, with half the dedupe period to spare for clock skew) has passed;
    -- '_u' is 0 when the set did not exist (emptied by the trim), so the next uuid sets the TTL again.
    local u = tonumber(m[4] or '0')
    local nu = nil
    if uk and (trim or (uuids and now >= u)) then
      if redis.call('EXPIRE', uk, dd) == 1 then
        nu = now + math.floor(dd / 2)
      elseif u ~= 0 then
        nu = 0
      end
    end
    if trim then
      if nu then
        redis.call('HSET', pk, '_t', now + 600, '_u', nu)
      else
        redis.call('HSET', pk, '_t', now + 600)
      end
    elseif nu then
      redis.call('HSET', pk, '_u', nu)
    end
    out[i] = applied
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
return {'ok', out}
"""
)

MERGE = (
    _PREAMBLE
    + """
local src, sdd, dst, ddd, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, ttl, dd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ta = redis.call('HGET', src, '@')
if ta then return {'a', ta} end
local tb = redis.call('HGET', dst, '@')
if tb then return {'b', tb} end
redis.call('HSET', dst, '_i', '1')
if ARGV[7] == '1' and redis.call('HEXISTS', src, '_i') == 1 then
  redis.call('EXPIRE', dst, ttl)
  return {'kept'}
end
local h = redis.call('HGETALL', src)
local dn = 0
local room = tonumber(ARGV[6]) - tonumber(redis.call('HGET', dst, '_n') or '0')
for j = 1, #h, 2 do
  local f, v = h[j], h[j + 1]
  local c = string.byte(f, 1)
  if c == 98 then
    redis.call('HINCRBY', dst, f, tonumber(v))
  elseif c == 112 then
    local cur = redis.call('HGET', dst, f)
    local wins
    if not cur then
      -- A property only the source has joins while the target is under the limit.
      wins = dn < room
      if wins then dn = dn + 1 end
    elseif string.byte(v, 1) == 115 then
      wins = string.byte(cur, 1) == 111 or ms_of(cur) <= ms_of(v)
    else
      wins = string.byte(cur, 1) == 111 and ms_of(cur) > ms_of(v)
    end
    if wins then redis.call('HSET', dst, f, v) end
  end
end
if dn ~= 0 then redis.call('HINCRBY', dst, '_n', dn) end
local u = redis.call('ZRANGE', sdd, 0, -1, 'WITHSCORES')
for j = 1, #u, 2 do redis.call('ZADD', ddd, 'NX', u[j + 1], u[j]) end
if #u > 0 then redis.call('EXPIRE', ddd, dd) end
redis.call('DEL', src, sdd)
redis.call('HSET', src, '@', ARGV[1])
redis.call('EXPIRE', src, ttl)
redis.call('HSETNX', dst, '_t', '0')
redis.call('EXPIRE', dst, ttl)
redis.call('ZREM', seen, ARGV[5])
redis.call('ZADD', seen, now, ARGV[1])
return {'ok'}
"""
)

READ = """
local plans = cjson.decode(ARGV[1])
local np = tonumber(ARGV[2])
local by = {}
for qi, x in ipairs(plans) do
  local l = by[x[1]]
  if not l then l = {}; by[x[1]] = l end
  l[#l + 1] = qi
end
local out = {}
local function props(h, j, parts)
  local f, v = h[j], h[j + 1]
  parts[#parts + 1] = string.sub(f, 2) .. ':' .. string.sub(v, string.find(v, ';', 1, true) + 1)
end
for i = 1, np do
  local h = redis.call('HGETALL', KEYS[i])
  local counts = {}
  for qi = 1, #plans do counts[qi] = 0 end
  local parts, redirect = {}, nil
  for j = 1, #h, 2 do
    local f = h[j]
    local c = string.byte(f, 1)
    if c == 112 then
      props(h, j, parts)
    elseif c == 98 then
      local l = by[string.sub(f, 2, 9)]
      if l then
        local lv, b = string.byte(f, 10) - 46, tonumber(string.sub(f, 11))
        for _, qi in ipairs(l) do
          if b >= plans[qi][lv] then counts[qi] = counts[qi] + tonumber(h[j + 1]) end
        end
      end
    elseif c == 64 then
      redirect = h[j + 1]
    end
  end
  if redirect then out[i] = {redirect} else out[i] = {'', '{' .. table.concat(parts, ',') .. '}', counts} end
end
for g = np + 1, #KEYS do
  local h = redis.call('HGETALL', KEYS[g])
  local parts = {}
  for j = 1, #h, 2 do
    if string.byte(h[j], 1) == 112 then props(h, j, parts) end
  end
  out[g] = '{' .. table.concat(parts, ',') .. '}'
end
return out
"""

TRACK = """
local out = {}
for i = 1, #ARGV - 1 do
  redis.call('HSETNX', KEYS[1], ARGV[i + 1], ARGV[1])
  out[i] = tonumber(redis.call('HGET', KEYS[1], ARGV[i + 1]))
end
return out
"""
