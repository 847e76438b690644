"""In-process LRU cache with per-entry TTL: the embedded default."""

from __future__ import annotations

import time
from collections import OrderedDict


class MemoryCache:
    """A bounded LRU; expired entries are dropped on read and evicted first by age of use."""

    name = "memory"

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        """Return the value when present and fresh."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store, evicting the least recently used entries beyond the bound."""
        self._data[key] = (time.monotonic() + ttl_seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """Drop everything."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
