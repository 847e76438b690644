"""Pick the cache backend from settings."""

from __future__ import annotations

from quantum_router.cache.base import Cache
from quantum_router.cache.breaker import CircuitBreaker
from quantum_router.cache.memory import MemoryCache
from quantum_router.settings import Settings


def build_cache(settings: Settings, breaker: CircuitBreaker | None = None) -> Cache:
    """Redis (cluster or standalone) when ``QR_REDIS_URL`` is set, else the in-process LRU. ``breaker`` is
    shared with the rate limiter, so a Redis outage is waited on once, not by both."""
    if settings.redis_url:
        from quantum_router.cache.redis_cache import RedisCache

        return RedisCache(
            settings.redis_url,
            cluster=settings.redis_cluster,
            prefix=settings.cache_key_prefix,
            socket_timeout=settings.redis_timeout_seconds,
            breaker=breaker,
        )
    return MemoryCache(settings.cache_max_entries)
