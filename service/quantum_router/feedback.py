"""User ratings of past executions; a rating becomes the logged quality (source ``rating``), ahead of any
judge verdict, and the reward is recomputed from it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database


class NotFound(Exception):
    """No such experience."""


class Forbidden(Exception):
    """The experience belongs to someone else."""


def rating_quality(rating: int) -> float:
    """Map a 1-5 rating onto the [0, 1] quality scale."""
    return (rating - 1) / 4


async def record_feedback(
    db: Database, user_id: str, experience_id: str, rating: int, comment: str | None
) -> float:
    """Store a rating on the caller's own experience (read and written on the primary); returns the reward."""

    async def _apply(session: AsyncSession) -> float:
        experience = await store.experience_by_id(session, experience_id)
        if experience is None:
            raise NotFound(experience_id)
        if experience.user_id != user_id:
            raise Forbidden(experience_id)
        quality = rating_quality(rating)
        reward = quality - experience.cost_penalty - experience.latency_penalty
        await store.set_feedback(session, experience_id, float(rating), comment, quality, reward)
        return reward

    return await db.write(_apply, owner=user_id)
