"""Per-principal rate limits: a token bucket (in-process by default)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from quantum_router.settings import Settings


@dataclass(frozen=True)
class Verdict:
    """Whether a request may proceed, and if not, how long to wait."""

    allowed: bool
    retry_after_seconds: float = 0.0


class RateLimiter(Protocol):
    """Admits or refuses one request of a principal."""

    async def hit(self, principal: str) -> Verdict:
        """Take one token from the principal's bucket."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryRateLimiter:
    """Token buckets in a dict: refill ``per_minute / 60`` tokens a second up to ``burst``."""

    def __init__(self, per_minute: int, burst: int, max_principals: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max = max_principals

    async def hit(self, principal: str) -> Verdict:
        """Refill by elapsed time, then take a token if one is there."""
        now = time.monotonic()
        tokens, last = self._buckets.get(principal, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[principal] = (tokens, now)
            return Verdict(False, (1.0 - tokens) / self._rate)
        if len(self._buckets) >= self._max and principal not in self._buckets:
            self._buckets.clear()  # a crude bound; full buckets are the default state anyway
        self._buckets[principal] = (tokens - 1.0, now)
        return Verdict(True)

    async def close(self) -> None:
        """Nothing to release."""


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Buckets shared through Redis when it is configured (every replica sees them), else in-process."""
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
        )
    return MemoryRateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
