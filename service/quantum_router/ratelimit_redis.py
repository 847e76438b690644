"""Per-principal rate limits shared by every replica: a token bucket kept in Redis by a Lua script.

The script reads and updates one hash per principal atomically, so it runs on Redis Cluster too (one key,
one slot). When Redis cannot be reached the limiter falls back to the in-process buckets: a cache outage
must not turn into refused requests. While the shared circuit breaker is open it goes there at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from quantum_router.cache.breaker import CircuitBreaker
from quantum_router.ratelimit import Budget, MemoryRateLimiter, Verdict

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate per second, burst, now (seconds), cost (0 only checks). Returns {allowed,
# retry-after in ms}.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry_ms = 0
if tokens >= 1 then
  tokens = tokens - cost
  allowed = 1
else
  retry_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, retry_ms}
"""


class RedisRateLimiter:
    """Token buckets in Redis, with the in-process limiter as fallback."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        per_minute: int,
        burst: int,
        prefix: str,
        timeout_seconds: float,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._breaker = breaker or CircuitBreaker(0)
        self._budget = Budget(per_minute, burst)
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._fallback = MemoryRateLimiter(per_minute, burst)

    async def hit(self, principal: str, budget: Budget | None = None, cost: int = 1) -> Verdict:
        """Take ``cost`` tokens from the shared bucket (or the local one while Redis is down)."""
        budget = budget or self._budget
        key = f"{self._prefix}rl:{{{principal}}}"
        if not self._breaker.allow():
            return await self._fallback.hit(principal, budget, cost)
        try:
            async with asyncio.timeout(self._timeout):
                allowed, retry_ms = await self._client.eval(
                    _TOKEN_BUCKET, 1, key, budget.rate, budget.burst, time.time(), cost
                )
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            log.warning("rate limiter falls back to local buckets: %s", type(exc).__name__)
            self._breaker.failure(type(exc).__name__)
            return await self._fallback.hit(principal, budget, cost)
        self._breaker.success()
        return Verdict(bool(allowed), int(retry_ms) / 1000)

    async def close(self) -> None:
        """Close the Redis connections."""
        with contextlib.suppress(RedisError, RedisClusterException, OSError, TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._client.aclose()
