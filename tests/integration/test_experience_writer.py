"""The batching experience writer on a real SQLite file and a real PostgreSQL primary: every acknowledged row
is stored, concurrent rows share transactions, a bad row fails alone, a full queue blocks, close drains, and
rows acknowledged while the primary is down are written once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.experience_writer import Acknowledge, ExperienceWriter, WriterClosed
from quantum_router.db.migrate import upgrade
from quantum_router.db.models import Experience, utcnow
from quantum_router.metrics import Metrics
from quantum_router.text_buckets import decode_buckets, encode_buckets
from quantum_router.text_model import TextHashing
from quantum_router.users import create_user
from tests.conftest import make_settings
from tests.integration.servers import PostgresStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
    else:
        stack: PostgresStack = request.getfixturevalue("postgres_stack")
        stack.start_all()
        settings = make_settings(tmp_path, database_url=stack.primary_url)
    database = Database(settings)
    await upgrade(database.primary)
    async with database.write_session() as session, session.begin():
        await session.execute(Experience.__table__.delete())
    yield database
    await database.dispose()


async def _user(db: Database) -> str:
    return await create_user(
        db, f"writer-{id(db)}-{asyncio.get_running_loop().time()}", "pw-123456", ["user"]
    )


def _row(user_id: str, i: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "prompt_hash": f"{i:064d}",
        "persona": "developer",
        "task_type": "chat",
        "features": {"dim": 0, "idx": [], "val": []},
        "action": "m",
        "propensity": 1.0,
        "explored": False,
        "variations": [],
        "quality": 0.5,
        "cost_usd": 0.0,
        "latency_ms": 1.0,
        "reward": 0.5,
        "cache_hit": False,
        "policy_version": "p",
    }


async def _count(db: Database) -> int:
    async with db.write_session() as session:
        return int((await session.execute(select(func.count()).select_from(Experience))).scalar_one())


def _batches(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("qr_experience_batch_size_count") or 0.0


@pytest.mark.parametrize("acknowledge", ["queued", "commit"])
async def test_concurrent_rows_are_all_stored_in_fewer_transactions(
    db: Database, acknowledge: Acknowledge
) -> None:
    user = await _user(db)
    metrics = Metrics()
    writer = ExperienceWriter(db, metrics, max_batch=64, queue_size=1000, acknowledge=acknowledge)
    writer.start()
    ids = await asyncio.gather(*(writer.add(_row(user, i), owner=user) for i in range(200)))
    await writer.close()
    assert len(set(ids)) == 200
    assert await _count(db) == 200
    assert _batches(metrics) < 200
    async with db.write_session() as session:
        stored = set((await session.execute(select(Experience.id))).scalars())
    assert stored == set(ids)


async def test_a_bad_row_fails_alone(db: Database) -> None:
    user = await _user(db)
    writer = ExperienceWriter(db, Metrics(), max_batch=64, queue_size=100, acknowledge="commit")
    writer.start()
    results = await asyncio.gather(
        writer.add(_row(user, 1), owner=user),
        writer.add(_row("no-such-user", 2), owner="no-such-user"),
        writer.add(_row(user, 3), owner=user),
        return_exceptions=True,
    )
    await writer.close()
    assert isinstance(results[0], str) and isinstance(results[2], str)
    assert isinstance(results[1], Exception)
    assert await _count(db) == 2


async def test_a_full_queue_blocks_callers_until_the_writer_catches_up(db: Database) -> None:
    user = await _user(db)
    writer = ExperienceWriter(db, Metrics(), max_batch=8, queue_size=2)
    first = [asyncio.create_task(writer.add(_row(user, i), owner=user)) for i in range(2)]
    third = asyncio.create_task(writer.add(_row(user, 2), owner=user))
    await asyncio.sleep(0.2)
    assert not third.done()  # the queue is full and nothing writes yet: back-pressure, not a drop
    writer.start()
    assert len(await asyncio.gather(*first, third)) == 3
    await writer.close()
    assert await _count(db) == 3


async def test_close_writes_everything_queued_and_refuses_more(db: Database) -> None:
    user = await _user(db)
    writer = ExperienceWriter(db, Metrics(), max_batch=16, queue_size=1000)
    writer.start()
    pending = [asyncio.create_task(writer.add(_row(user, i), owner=user)) for i in range(50)]
    await asyncio.sleep(0)  # queued, not yet written
    await writer.close()
    assert all(task.done() and not task.exception() for task in pending)
    assert await _count(db) == 50
    with pytest.raises(WriterClosed):
        await writer.add(_row(user, 99), owner=user)
    assert issubclass(WriterClosed, DatabaseUnavailable)  # answered as a 503, like an outage


async def test_the_callers_reads_wait_for_its_queued_rows(db: Database) -> None:
    user = await _user(db)
    writer = ExperienceWriter(db, Metrics(), max_batch=64, queue_size=100)
    writer.start()
    experience_id = await writer.add(_row(user, 1), owner=user)
    await writer.settled(user)
    async with db.write_session() as session:
        assert await session.get(Experience, experience_id) is not None
    await writer.close()


async def test_rows_acknowledged_during_an_outage_are_written_when_the_primary_returns(
    postgres_stack: PostgresStack, tmp_path: Path
) -> None:
    postgres_stack.start_all()
    database = Database(make_settings(tmp_path, database_url=postgres_stack.primary_url))
    await upgrade(database.primary)
    user = await _user(database)
    writer = ExperienceWriter(database, Metrics(), max_batch=64, queue_size=1000)
    writer.start()
    try:
        postgres_stack.stop_node("primary")
        ids = [await writer.add(_row(user, i), owner=user) for i in range(20)]  # answered while down
        await asyncio.sleep(1.0)
        postgres_stack.start_node("primary")
        await asyncio.wait_for(writer.settled(user), 30)
        async with database.write_session() as session:
            stored = (await session.execute(select(Experience.id).where(Experience.id.in_(ids)))).scalars()
            assert set(stored) == set(ids)
    finally:
        postgres_stack.start_all()
        await writer.close()
        await database.dispose()


async def test_a_linger_lets_rows_of_light_traffic_share_a_commit(db: Database) -> None:
    user = await _user(db)
    metrics = Metrics()
    # Two rows per INSERT: the batch of five goes out as three statements, still in one commit.
    writer = ExperienceWriter(db, metrics, max_batch=64, queue_size=100, linger_seconds=0.2, insert_rows=2)
    writer.start()
    queued_at = []
    for i in range(5):  # one row every 10 ms: without a linger, each would commit alone
        queued_at.append(utcnow())
        await writer.add(_row(user, i), owner=user)
        await asyncio.sleep(0.01)
    await writer.flushed()
    committed_at = utcnow()
    assert (_batches(metrics), await _count(db)) == (1.0, 5)
    await writer.close()
    # Each row is stamped when it was queued, not when the lingering batch committed (0.15 s or more later).
    async with db.write_session() as session:
        rows = (await session.execute(select(Experience.prompt_hash, Experience.created_at))).all()
    stamped = {int(prompt_hash): created_at.replace(tzinfo=UTC) for prompt_hash, created_at in rows}
    for i, before in enumerate(queued_at):
        assert before <= stamped[i] < before + timedelta(seconds=0.05) < committed_at


async def test_commit_acknowledgement_never_lingers(db: Database) -> None:
    user = await _user(db)
    metrics = Metrics()
    writer = ExperienceWriter(
        db, metrics, max_batch=64, queue_size=100, acknowledge="commit", linger_seconds=5
    )
    writer.start()
    async with asyncio.timeout(4):  # a linger would hold the first commit for 5 s
        for i in range(3):
            await writer.add(_row(user, i), owner=user)
    assert _batches(metrics) == 3.0
    await writer.close()


async def test_text_buckets_are_written_in_a_batch_and_read_back(db: Database) -> None:
    # One batch of rows with the prompt's packed buckets and rows without (a policy with no text model,
    # a cache hit): the column is bytes on SQLite (BLOB) and PostgreSQL (bytea) alike.
    hashing = TextHashing()
    blob = encode_buckets(hashing.buckets_of("which of the following is true"), hashing)
    user = await _user(db)
    writer = ExperienceWriter(db, Metrics(), max_batch=8, queue_size=16, acknowledge="commit")
    writer.start()
    try:
        ids = await asyncio.gather(
            *(writer.add({**_row(user, i), "text_buckets": blob if i % 2 else None}, user) for i in range(6))
        )
    finally:
        await writer.close()
    async with db.write_session() as session:
        stored = {e.id: e.text_buckets for e in (await session.execute(select(Experience))).scalars()}
    assert [stored[i] for i in ids] == [None, blob, None, blob, None, blob]
    assert decode_buckets(blob)[0] == hashing
