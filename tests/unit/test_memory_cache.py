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


def test_keys_ignore_line_endings_and_trailing_space_but_not_options() -> None:
    base = response_key("Hello  World\n", "developer", "chat", None, 1, 1024)
    assert base == response_key("Hello  World  \r\n\r\n", "developer", "chat", None, 1, 1024)
    assert base != response_key("Hello  World", "architect", "chat", None, 1, 1024)
    assert base != response_key("Hello  World", "developer", "chat", "m1", 1, 1024)
    assert base != response_key("Hello  World", "developer", "chat", None, 3, 1024)
    assert base != response_key("Hello  World", "developer", "chat", None, 1, 1024, scope="user-1")


def test_keys_keep_case_and_indentation_which_change_what_code_means() -> None:
    flat = "def f(x):\nif x:\n    return 1\nreturn 2"
    nested = "def f(x):\n    if x:\n        return 1\n    return 2"
    assert response_key(flat, "developer", "code_analysis", None, 1, 1024) != response_key(
        nested, "developer", "code_analysis", None, 1, 1024
    )
    assert response_key("rename X to y", "developer", "chat", None, 1, 1024) != response_key(
        "rename x to y", "developer", "chat", None, 1, 1024
    )
    windows = "def f():\r\n    return 1  \r\n"
    assert response_key(windows, "developer", "chat", None, 1, 1024) == response_key(
        "def f():\n    return 1", "developer", "chat", None, 1, 1024
    )
