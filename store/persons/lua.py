"""The person store's Lua scripts (Redis). Field layout and rules: ``store.persons.model``; windows:
``store.persons.windows`` (the level widths below must match ``LEVELS``).

Property fields ('p', 'f', 'l', 'u' + name) follow ``PropState``: each call loads a property's fields once,
joins the call's operations in memory and writes what changed (one HSET and at most one HDEL per hash).

``WRITE``  KEYS: [seen zset (single Redis only), person/group hashes and dedupe zsets...]; ARGV[1]: JSON
           ``[now, ttl, dedupe, retention, max_props, [[hash i, dedupe i or 0, seen member or "",
           events]...], seen in KEYS 1/0, check only 1/0]`` with events ``[[uuid, ms, [[kind, name,
           value]...], [token...]]...]``. First pass (no writes): a hash merged elsewhere answers its
           target; a person that would exceed ``max_props`` aborts the whole call (``{"limit", i}``); a
           check-only call stops here. Second pass applies, deduplicating by uuid, and answers ``{"ok",
           [applied or target...], [seen ids to add...]}`` (a target as ``{target}`` while that merge is
           unfinished; the seen ids only when the seen zset is not in KEYS). The roll-up (every 10
           minutes per hash) also forgets tombstones older than the dedupe period.
``MERGE``  KEYS: [source hash, source dedupe, target hash, target dedupe, seen]; ARGV: [target id, now, ttl,
           dedupe, source id, max_props, identify 1/0] (properties only the source has join up to
           max_props; property states are joined, tombstones included). ``{"a"|"b", id}`` when the
           source/target was itself merged (resolve, retry); the target is marked identified (``_i``);
           ``{"kept"}`` when an identify found the source identified.
``DETACH`` (Cluster merge, step 1) KEYS: [source hash, source dedupe, stash hash, stash dedupe] (one slot);
           ARGV: [target id, merge id, ttl, identify 1/0]. Moves the source's keys to the stash and leaves
           ``@`` -> target and ``~`` -> merge id: ``{"moved", merge id, fields, dedupe}``; ``{"a", id}``
           when merged before, ``{"pending", id, merge id, fields, dedupe}`` when that merge is unfinished
           (``~`` still set), ``{"kept"}`` as ``MERGE``.
``ABSORB`` (step 2) KEYS: [target hash, target dedupe]; ARGV[1]: JSON ``[now, ttl, dedupe, max_props, merge
           id, fields, dedupe]``: joins the fields as ``MERGE`` does, once per merge id (recorded as
           ``m<merge id>`` in the target's dedupe zset); ``{"b", id}`` when the target was merged.
``RELEASE`` (step 3) KEYS: [source hash, stash hash, stash dedupe]; ARGV: [merge id]: drops the stash and
           ``~`` if ``~`` is still that merge id.
``SEEN``   KEYS: [seen zset]; ARGV: [now, ttl, id to remove or "", ids to add...]; trims to the TTL.
``TRACK``  KEYS: [project counters hash]; ARGV: [now, counter ids...]: when each was first tracked.
``READ``   KEYS: [person hashes..., group hashes...]; ARGV: [JSON ``[[token, first bucket per level...]
           ...]`` (the distinct count plans of the call), number of persons]. Per person ``{"",
           properties JSON, [count per plan...]}`` or ``{target}`` (``{target, "~"}`` while that merge is
           unfinished); per group its properties JSON.
"""

from __future__ import annotations

_PREAMBLE = """
local res = {1, 60, 3600, 86400}
local function ms_of(v) return tonumber(string.sub(v, 2, string.find(v, ';', 1, true) - 1)) end
"""

# One property's state (``store.persons.model.PropState``): {latest $set, first $set_once or 'd', last
# $set_once, newest $unset ms}, false where absent; stored as the fields 'p', 'f', 'l', 'u' + name.
_PROPERTIES = """
local PRE = {'p', 'f', 'l', 'u'}
-- (ms, JSON text) order, the text compared byte by byte (Lua's '<' on strings follows the server's locale).
local function after(a, b)
  local ma, mb = ms_of(a), ms_of(b)
  if ma ~= mb then return ma > mb end
  local ja = string.sub(a, string.find(a, ';', 1, true) + 1)
  local jb = string.sub(b, string.find(b, ';', 1, true) + 1)
  if ja == jb then return false end
  for j = 1, math.min(#ja, #jb) do
    local x, y = string.byte(ja, j), string.byte(jb, j)
    if x ~= y then return x > y end
  end
  return #ja > #jb
end
-- The state from the stored fields r = {p, f, l, u} (false when absent).
local function load(r)
  local p, f, l = r[1], r[2], r[3]
  local u = r[4] and tonumber(r[4]) or false
  if not p then return {false, f, false, u} end
  if string.byte(p, 1) == 115 then
    if not l and f and f ~= 'd' then l = f end
    return {p, f, l, u}
  end
  if f == 'd' then return {false, 'd', p, u} end
  return {false, p, l or p, u}
end
local function shown(st)
  if st[1] then return st[1] end
  if st[2] and st[2] ~= 'd' then return st[2] end
  return st[3]
end
local function bury(st)
  local u = st[4]
  if st[1] and ms_of(st[1]) <= u then st[1] = false end
  if st[2] and st[2] ~= 'd' and ms_of(st[2]) <= u then st[2] = 'd' end
  if st[3] and ms_of(st[3]) <= u then st[3] = false end
end
local function add(st, k, v, ms)
  local u = st[4]
  if k == 'u' then
    if (not u) or ms > u then st[4] = ms end
    bury(st)
  elseif u and ms <= u then
    if k == 'o' then st[2] = 'd' end
  elseif k == 's' then
    if (not st[1]) or after(v, st[1]) then st[1] = v end
  else
    local f = st[2]
    if (not f) or (f ~= 'd' and after(f, v)) then st[2] = v end
    if (not st[3]) or after(v, st[3]) then st[3] = v end
  end
end
local function join(st, o)
  if o[4] then add(st, 'u', '', o[4]) end
  if o[2] == 'd' then st[2] = 'd' end
  for j = 1, 3 do
    local v = o[j]
    if v and v ~= 'd' then add(st, string.sub(v, 1, 1), v, ms_of(v)) end
  end
end
-- Queue the canonical fields of st for name where they differ from the stored r (sets: flat field/value
-- list, dels: fields); answers 1/-1/0, the change in visible properties.
local function save(name, r, st, sets, dels)
  local p, f, l = shown(st), st[2], st[3]
  if l == p or l == f then l = false end
  if f == p then f = false end
  local new = {p, f, l, st[4] and string.format('%d', st[4]) or false}
  for j = 1, 4 do
    if new[j] ~= r[j] then
      if new[j] then
        sets[#sets + 1] = PRE[j] .. name
        sets[#sets + 1] = new[j]
      else
        dels[#dels + 1] = PRE[j] .. name
      end
    end
  end
  return (p and 1 or 0) - (r[1] and 1 or 0)
end
local function fetch(key, name)
  return redis.call('HMGET', key, 'p' .. name, 'f' .. name, 'l' .. name, 'u' .. name)
end
local function flush(key, sets, dels)
  for j = 1, #sets, 1000 do redis.call('HSET', key, unpack(sets, j, math.min(j + 999, #sets))) end
  for j = 1, #dels, 500 do redis.call('HDEL', key, unpack(dels, j, math.min(j + 499, #dels))) end
end
"""

WRITE = (
    _PREAMBLE
    + _PROPERTIES
    + """
local a = cjson.decode(ARGV[1])
local now, ttl, dd, ret, maxp, ws = a[1], a[2], a[3], a[4], a[5], a[6]
-- The seen zset is KEYS[1], or (a[7] == 0: on a Cluster, another slot) the ids to add are answered.
local sk, seen = a[7] == 1 and KEYS[1], {}
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
-- First pass, no writes: redirects, and the property limit (the stored fields read here are kept in
-- props[i] for the second pass: one HMGET per property named in the call).
for i, w in ipairs(ws) do
  local pk = KEYS[w[1]]
  local m = redis.call('HMGET', pk, '@', '_n', '_t', '_u', '~')
  if m[1] then
    -- {target} while the merge is unfinished ('~', store.persons.handover): not to be cached.
    if m[5] then out[i] = {m[1]} else out[i] = m[1] end
  else
    out[i] = 0
    meta[i] = m
    local n = tonumber(m[2] or '0')
    local cur, added = {}, {}
    props[i] = cur
    for _, e in ipairs(w[4]) do
      for _, op in ipairs(e[3]) do
        local f = op[2]
        if cur[f] == nil then cur[f] = fetch(pk, f) end
        if op[1] ~= 'u' and not cur[f][1] and not added[f] then
          added[f] = true
          n = n + 1
        end
      end
    end
    if n > maxp then return {'limit', i} end
  end
end
if a[8] == 1 then return {'ok', out, seen} end
for i, w in ipairs(ws) do
  if out[i] == 0 then
    local pk = KEYS[w[1]]
    local uk = nil
    if w[2] > 0 then uk = KEYS[w[2]] end
    local cur, incr, states = props[i], {}, {}
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
          local st = states[f]
          if not st then
            st = load(cur[f])
            states[f] = st
          end
          add(st, op[1], op[1] .. stamp .. op[3], ms)
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
    -- One write per property and one increment per bucket the call touched (events of one person share
    -- their recent buckets).
    if next(states) then
      local sets, dels = {}, {}
      for f, st in pairs(states) do dn = dn + save(f, cur[f], st, sets, dels) end
      flush(pk, sets, dels)
    end
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
        elseif string.byte(f, 1) == 117 and tonumber(redis.call('HGET', pk, f)) < (now - dd) * 1000 then
          -- A tombstone past the lateness window (the dedupe period): forgotten (PropState.forget_unset).
          local name = string.sub(f, 2)
          local r = fetch(pk, name)
          local st = load(r)
          st[4] = false
          if st[2] == 'd' then st[2] = st[3] end
          local tsets, tdels = {}, {}
          save(name, r, st, tsets, tdels)
          flush(pk, tsets, tdels)
        end
      end
      if uk then redis.call('ZREMRANGEBYSCORE', uk, '-inf', now - dd) end
      -- Refreshed with the roll-up (at most every 10 minutes per person): the TTL is days long, and
      -- seen_persons needs no finer time.
      redis.call('EXPIRE', pk, ttl)
      if w[3] == '' then
      elseif sk then redis.call('ZADD', sk, now, w[3])
      else seen[#seen + 1] = w[3] end
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
if sk then redis.call('ZREMRANGEBYSCORE', sk, '-inf', now - ttl) end
return {'ok', out, seen}
"""
)

# Join a source person's fields (HGETALL list h) and dedupe set (ZRANGE WITHSCORES list u) into the target
# hash dst and dedupe set ddd (ARGV-free: MERGE passes its source's, ABSORB what DETACH handed over).
_ABSORB = """
local function absorb(dst, ddd, h, u, maxp, ttl, dd)
  local dn = 0
  local room = maxp - tonumber(redis.call('HGET', dst, '_n') or '0')
  -- The source's property fields by name ({p, f, l, u}), in the order first met.
  local theirs, names = {}, {}
  for j = 1, #h, 2 do
    local f, v = h[j], h[j + 1]
    local c = string.byte(f, 1)
    if c == 98 then
      redis.call('HINCRBY', dst, f, tonumber(v))
    elseif c == 112 or c == 102 or c == 108 or c == 117 then
      local name = string.sub(f, 2)
      local r = theirs[name]
      if not r then
        r = {false, false, false, false}
        theirs[name] = r
        names[#names + 1] = name
      end
      r[(c == 112 and 1) or (c == 102 and 2) or (c == 108 and 3) or 4] = v
    end
  end
  local sets, dels = {}, {}
  for _, name in ipairs(names) do
    local r = fetch(dst, name)
    local st = load(r)
    local had = shown(st)
    join(st, load(theirs[name]))
    -- A property only the source shows joins while the target is under the limit.
    if had or not shown(st) or dn < room then dn = dn + save(name, r, st, sets, dels) end
  end
  flush(dst, sets, dels)
  if dn ~= 0 then redis.call('HINCRBY', dst, '_n', dn) end
  for j = 1, #u, 2 do redis.call('ZADD', ddd, 'NX', u[j + 1], u[j]) end
  if #u > 0 then redis.call('EXPIRE', ddd, dd) end
  redis.call('HSETNX', dst, '_t', '0')
  redis.call('EXPIRE', dst, ttl)
end
"""

MERGE = (
    _PREAMBLE
    + _PROPERTIES
    + _ABSORB
    + """
local src, sdd, dst, ddd = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
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
absorb(dst, ddd, redis.call('HGETALL', src), redis.call('ZRANGE', sdd, 0, -1, 'WITHSCORES'),
  tonumber(ARGV[6]), ttl, dd)
redis.call('DEL', src, sdd)
redis.call('HSET', src, '@', ARGV[1])
redis.call('EXPIRE', src, ttl)
redis.call('ZREM', KEYS[5], ARGV[5])
redis.call('ZADD', KEYS[5], now, ARGV[1])
return {'ok'}
"""
)

# The cross-slot merge of a Redis Cluster (``store.persons.handover``), step by step.
DETACH = """
local src, sdd, sh, su = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local m = redis.call('HMGET', src, '@', '~')
if m[1] then
  if m[2] then
    return {'pending', m[1], m[2], redis.call('HGETALL', sh), redis.call('ZRANGE', su, 0, -1, 'WITHSCORES')}
  end
  return {'a', m[1]}
end
if ARGV[4] == '1' and redis.call('HEXISTS', src, '_i') == 1 then return {'kept'} end
local h = redis.call('HGETALL', src)
local u = redis.call('ZRANGE', sdd, 0, -1, 'WITHSCORES')
local ttl = tonumber(ARGV[3])
if #h > 0 then
  redis.call('RENAME', src, sh)
  redis.call('EXPIRE', sh, ttl)
end
if #u > 0 then
  redis.call('RENAME', sdd, su)
  redis.call('EXPIRE', su, ttl)
end
redis.call('HSET', src, '@', ARGV[1], '~', ARGV[2])
redis.call('EXPIRE', src, ttl)
return {'moved', ARGV[2], h, u}
"""

ABSORB = (
    _PREAMBLE
    + _PROPERTIES
    + _ABSORB
    + """
local a = cjson.decode(ARGV[1])
local now, ttl, dd, maxp, mid, h, u = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
local tb = redis.call('HGET', KEYS[1], '@')
if tb then return {'b', tb} end
redis.call('HSET', KEYS[1], '_i', '1')
redis.call('EXPIRE', KEYS[1], ttl)
if mid ~= '' and redis.call('ZADD', KEYS[2], 'NX', now, 'm' .. mid) == 1 then
  redis.call('EXPIRE', KEYS[2], dd)
  absorb(KEYS[1], KEYS[2], h, u, maxp, ttl, dd)
end
return {'ok'}
"""
)

RELEASE = """
if redis.call('HGET', KEYS[1], '~') == ARGV[1] then
  redis.call('HDEL', KEYS[1], '~')
  redis.call('DEL', KEYS[2], KEYS[3])
end
return 1
"""

SEEN = """
local now = tonumber(ARGV[1])
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[1], ARGV[3]) end
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return 1
"""

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
  local parts, redirect, pending = {}, nil, nil
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
    elseif c == 126 then
      pending = '~'
    end
  end
  if redirect then
    out[i] = {redirect, pending}
  else
    out[i] = {'', '{' .. table.concat(parts, ',') .. '}', counts}
  end
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
