"""Queries of ``db/store.py`` whose order matters, on a real SQLite database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.models import Experience

T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def _log_experiences(db: Database, count: int) -> None:
    """``count`` experiences one minute apart, labelled e0 (oldest) to e<count-1>, plus a newer cache hit."""

    async def _add(session: AsyncSession) -> None:
        user = await store.add_user(session, "alice", "unused", ["user"])
        for i in range(count + 1):
            await store.add_experience(
                session,
                user_id=user.id,
                created_at=T0 + timedelta(minutes=i),
                prompt_hash=f"e{i}",
                persona="developer",
                task_type="chat",
                features={"dim": 0, "idx": [], "val": []},
                action="cheap",
                propensity=1.0,
                quality=0.5,
                cost_usd=0.0,
                latency_ms=1.0,
                reward=0.5,
                cache_hit=i == count,
                policy_version="prior-1",
            )

    await db.write(_add)


async def test_training_limit_keeps_the_newest_experiences_oldest_first(db: Database) -> None:
    await _log_experiences(db, 5)

    async def _newest_three(session: AsyncSession) -> Sequence[Experience]:
        return await store.experiences_since(session, None, 3)

    rows = await db.read(_newest_three)
    assert [row.prompt_hash for row in rows] == ["e2", "e3", "e4"]  # the cache hit e5 is left out


async def test_latest_policy_is_the_last_published_not_the_last_inserted(db: Database) -> None:
    # Two trainers publishing at once: the later publication can reach the database first.
    async def _publish(session: AsyncSession) -> None:
        await store.add_policy(session, "published-later", b"later", T0 + timedelta(seconds=1))
        await store.add_policy(session, "published-earlier", b"earlier", T0)

    await db.write(_publish)
    latest = await db.read_primary(store.latest_policy)
    assert latest is not None and latest.version == "published-later"
    stamp = await db.read_primary(store.latest_policy_stamp)
    assert stamp is not None and stamp[0] == "published-later"
