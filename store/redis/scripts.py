"""The Lua scripts of the Redis flag store (see ``store.redis.flag_store`` for the key layout).

Each script touches the keys of one hash tag only (one project's ``{p<id>}`` keys, or the global ``{g}``
keys), so it runs on Redis Cluster too. Numbers arrive as strings; ``tonumber(x or '0')`` reads a missing
field as 0.
"""

from __future__ import annotations

__all__ = ["APPLY", "COMMIT", "FINISH_RESYNC", "PUBLISH_ONE", "REPLACE"]

# KEYS: meta, versions, target hash (flags | cohorts | meta), static
# ARGV: seq, kind, entity id, version, body JSON, members JSON ('' = unchanged), deleted ('1'|'0'),
#       api_token, secret_token_hash, group_type_mapping JSON, property_matching_version
APPLY = """
local seq = tonumber(ARGV[1])
if seq <= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
local field = ARGV[2] .. ':' .. ARGV[3]
if tonumber(ARGV[4]) <= tonumber(redis.call('HGET', KEYS[2], field) or '-1') then return 0 end
redis.call('HSET', KEYS[2], field, ARGV[4])
if ARGV[2] == 'project' then
  redis.call('HSET', KEYS[1], 'api_token', ARGV[8], 'secret_token_hash', ARGV[9],
             'group_type_mapping', ARGV[10], 'project_version', ARGV[4],
             'property_matching_version', ARGV[11])
  return 1
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
if ARGV[2] == 'cohort' then
  if ARGV[7] == '1' then redis.call('HDEL', KEYS[4], ARGV[3])
  elseif ARGV[6] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], ARGV[6]) end
end
return 1
"""

# KEYS: meta, versions, flags, cohorts, static
# ARGV: seq, api_token, secret_token_hash, group_type_mapping JSON, n flags, (id, version, JSON)*,
#       n cohorts, (id, version, JSON)*, n static, (id, members JSON)*, property_matching_version
REPLACE = """
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'api_token', ARGV[2], 'secret_token_hash', ARGV[3],
           'group_type_mapping', ARGV[4], 'project_version', '0')
local i = 5
for _, kind in ipairs({'flag', 'cohort'}) do
  local target = KEYS[3]
  if kind == 'cohort' then target = KEYS[4] end
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    redis.call('HSET', target, ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[2], kind .. ':' .. ARGV[i], ARGV[i + 1])
    i = i + 3
  end
end
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[1], 'property_matching_version', ARGV[i])
return 1
"""

# KEYS: feed.  Appends one entry naming the current last entry as its predecessor. Returns the new id.
# ARGV: maxlen, then the entry's fields (seq, project, op, type, id, version, committed)
PUBLISH_ONE = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'prev', prev, 'seq', ARGV[2],
                  'project', ARGV[3], 'op', ARGV[4], 'type', ARGV[5], 'id', ARGV[6], 'version', ARGV[7],
                  'committed', ARGV[8])
"""

# KEYS: cursor, resync token, feed.  ARGV: token, seq, maxlen.  Ends a full resync: sets the cursor and
# publishes a "reload everything" entry, unless Redis was flushed since the resync began (token gone).
FINISH_RESYNC = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'prev', prev, 'seq', ARGV[2], 'project', 0,
           'op', 'reload', 'type', 'project', 'id', 0, 'version', ARGV[2], 'committed', 0)
return 1
"""

# KEYS: cursor, feed.  ARGV: expected cursor, new cursor, maxlen, then 7 fields per entry.
COMMIT = """
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return -2 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
for i = 4, #ARGV, 7 do
  prev = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'prev', prev, 'seq', ARGV[i],
                    'project', ARGV[i + 1], 'op', ARGV[i + 2], 'type', ARGV[i + 3], 'id', ARGV[i + 4],
                    'version', ARGV[i + 5], 'committed', ARGV[i + 6])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
