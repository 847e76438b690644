"""The cache interface every backend implements."""

from __future__ import annotations

from typing import Protocol


class CacheUnavailable(Exception):
    """The cache backend cannot be reached; callers treat this as a miss."""


class Cache(Protocol):
    """A byte-value cache with per-entry TTL.

    Backends raise :class:`CacheUnavailable` when their server cannot be reached, so the
    caller can degrade to a miss instead of failing the request.
    """

    name: str

    async def get(self, key: str) -> bytes | None:
        """Return the stored value, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store a value that expires after ``ttl_seconds``."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
