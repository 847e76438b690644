"""Rate limits: token buckets per principal or client address (in-process by default, else in Redis)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from quantum_router.cache.breaker import CircuitBreaker
from quantum_router.settings import Settings


@dataclass(frozen=True)
class Verdict:
    """Whether a request may proceed, and if not, how long to wait."""

    allowed: bool
    retry_after_seconds: float = 0.0


@dataclass(frozen=True)
class Budget:
    """A token bucket's shape: ``per_minute`` tokens a minute, at most ``burst`` saved up."""

    per_minute: int
    burst: int

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.per_minute / 60.0


class RateLimiter(Protocol):
    """Admits or refuses one request of a principal."""

    async def hit(self, principal: str, budget: Budget | None = None, cost: int = 1) -> Verdict:
        """Take ``cost`` tokens from the principal's bucket (shaped by ``budget``, else the limiter's own).

        ``cost=0`` only asks whether a token is there, taking none.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryRateLimiter:
    """Token buckets in a dict: refill ``per_minute / 60`` tokens a second up to ``burst``.

    The dict is bounded. Past the bound it first forgets buckets that have refilled (a full bucket is the
    same as none), then the least recently used ones: a throttled client cannot get its bucket forgotten
    by sending a burst of requests under other names.
    """

    def __init__(self, per_minute: int, burst: int, max_principals: int = 100_000) -> None:
        self._budget = Budget(per_minute, burst)
        # principal -> (tokens, time of that count, time the bucket is full again), least recently used first
        self._buckets: OrderedDict[str, tuple[float, float, float]] = OrderedDict()
        self._max = max_principals

    async def hit(self, principal: str, budget: Budget | None = None, cost: int = 1) -> Verdict:
        """Refill by elapsed time, then take ``cost`` tokens if a whole one is there."""
        budget = budget or self._budget
        now = time.monotonic()
        tokens, last, _ = self._buckets.get(principal, (float(budget.burst), now, now))
        tokens = min(float(budget.burst), tokens + (now - last) * budget.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= cost
        if principal not in self._buckets and len(self._buckets) >= self._max:
            self._evict(now)
        self._buckets[principal] = (tokens, now, now + (budget.burst - tokens) / budget.rate)
        self._buckets.move_to_end(principal)
        if allowed:
            return Verdict(True)
        return Verdict(False, (1.0 - tokens) / budget.rate)

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, _, full_at) in self._buckets.items() if full_at <= now]:
            del self._buckets[key]
        # Leave room for a tenth of the bound, so a full dict of live buckets is not scanned on every hit.
        while len(self._buckets) >= self._max * 0.9:
            self._buckets.popitem(last=False)

    async def close(self) -> None:
        """Nothing to release."""


def build_rate_limiter(settings: Settings, breaker: CircuitBreaker | None = None) -> RateLimiter:
    """Buckets shared through Redis when it is configured (every replica sees them), else in-process.
    ``breaker`` is the cache's, so a Redis outage is waited on once, not by both."""
    if settings.redis_url:
        from quantum_router.cache.redis_cache import make_client
        from quantum_router.ratelimit_redis import RedisRateLimiter

        client = make_client(settings.redis_url, settings.redis_cluster, settings.redis_timeout_seconds, 1)
        return RedisRateLimiter(
            client,
            settings.rate_limit_per_minute,
            settings.rate_limit_burst,
            settings.cache_key_prefix,
            4 * settings.redis_timeout_seconds,
            breaker,
        )
    return MemoryRateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
