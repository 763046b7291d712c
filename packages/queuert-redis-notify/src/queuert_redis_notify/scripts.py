"""Lua scripts run by the adapter.

Each touches exactly one key, passed in ``KEYS``, so it runs unchanged on
Redis Cluster.
"""

from __future__ import annotations

# Consume one unit of a wake budget. A missing key (expired, evicted or never
# written) answers 1: without a budget every listener looks for work, which is
# what happens without hints at all.
CLAIM_WAKE = """
local value = redis.call('GET', KEYS[1])
if not value then
  return 1
end
local budget = tonumber(value)
if budget == nil then
  return 1
end
if budget > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""
