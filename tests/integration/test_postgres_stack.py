"""Streaming replication and node failures on a real PostgreSQL primary with two replicas."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.integration.servers import PostgresStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPLICATION_DEADLINE = 20.0
# A refused connection fails at once; the bound covers a loaded CI machine.
FAIL_FAST_SECONDS = 5.0
TABLE = "qr_integration_rows"


def make_engine(url: str) -> AsyncEngine:
    """No pooling, so a restarted server never meets a stale pooled connection; bounded waits."""
    return create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 3, "command_timeout": 5})


@pytest.fixture
async def stack(postgres_stack: PostgresStack) -> AsyncIterator[PostgresStack]:
    """The session stack with all nodes up and streaming; restores that after each test."""
    postgres_stack.start_all()
    engine = make_engine(postgres_stack.primary_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} (token text PRIMARY KEY)"))
    finally:
        await engine.dispose()
    yield postgres_stack
    postgres_stack.start_all()


async def insert_token(url: str) -> str:
    """Commit one new row on the primary and return its token."""
    token = uuid.uuid4().hex
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"INSERT INTO {TABLE} (token) VALUES (:t)"), {"t": token})
    finally:
        await engine.dispose()
    return token


async def has_token(url: str, token: str) -> bool:
    """True when the server at ``url`` shows the row."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE token = :t"), {"t": token})
            return bool(found == 1)
    finally:
        await engine.dispose()


async def wait_for_token(url: str, token: str, deadline_s: float = REPLICATION_DEADLINE) -> float:
    """Poll until the row is visible at ``url``; return the seconds it took. Bounded by deadline_s."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if await has_token(url, token):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    pytest.fail(f"row {token} not visible at {url} within {deadline_s} s")


async def test_primary_writes_reach_both_replicas(stack: PostgresStack) -> None:
    token = await insert_token(stack.primary_url)
    for url in stack.replica_urls:
        lag = await wait_for_token(url, token)
        print(f"replicated in {lag:.2f} s")


async def test_replicas_are_read_only(stack: PostgresStack) -> None:
    with pytest.raises(DBAPIError, match="read-only"):
        await insert_token(stack.replica_urls[0])


async def test_one_replica_down_leaves_the_other_readable(stack: PostgresStack) -> None:
    stack.stop_node("replica1")
    token = await insert_token(stack.primary_url)
    await wait_for_token(stack.replica_urls[1], token)
    start = time.monotonic()
    with pytest.raises((OperationalError, DBAPIError, OSError)):
        await has_token(stack.replica_urls[0], token)
    assert time.monotonic() - start < FAIL_FAST_SECONDS
    # The restarted replica catches up from its replication slot.
    stack.start_node("replica1")
    await wait_for_token(stack.replica_urls[0], token)
    stack.wait_replicating(60)


async def test_primary_down_fails_writes_fast_and_keeps_committed_rows(stack: PostgresStack) -> None:
    committed = await insert_token(stack.primary_url)
    await wait_for_token(stack.replica_urls[0], committed)
    stack.stop_node("primary")
    start = time.monotonic()
    with pytest.raises((OperationalError, DBAPIError, OSError)):
        await insert_token(stack.primary_url)
    assert time.monotonic() - start < FAIL_FAST_SECONDS
    # Reads keep working on the replicas while the primary is away.
    assert await has_token(stack.replica_urls[1], committed)
    stack.start_node("primary")
    assert await has_token(stack.primary_url, committed)
    stack.wait_replicating(60)
    after_restart = await insert_token(stack.primary_url)
    for url in stack.replica_urls:
        await wait_for_token(url, after_restart)
