import asyncio

from quantum_router.cache.keys import response_key
from quantum_router.cache.memory import MemoryCache


async def test_lru_bound_and_ttl() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", 10)
    await cache.set("b", b"2", 10)
    assert await cache.get("a") == b"1"  # a is now the most recently used
    await cache.set("c", b"3", 10)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1"
    await cache.set("short", b"x", 0.01)
    await asyncio.sleep(0.03)
    assert await cache.get("short") is None
    assert len(cache) <= 2


def test_keys_ignore_case_and_spacing_but_not_options() -> None:
    base = response_key("Hello  World", "developer", "chat", None, 1, 1024)
    assert base == response_key("hello world", "developer", "chat", None, 1, 1024)
    assert base != response_key("hello world", "architect", "chat", None, 1, 1024)
    assert base != response_key("hello world", "developer", "chat", "m1", 1, 1024)
    assert base != response_key("hello world", "developer", "chat", None, 3, 1024)
