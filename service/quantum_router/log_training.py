"""``quantum-router train --from-log``: train on the service's own experience log and publish the policy.

The log is read from a replica (a lag-tolerant export). Only rows logged with the feature spec of the
policy being served are used, so features and network always agree. Publishing writes the artifact to the
``policies`` table (and to Redis when it is configured), where every service replica picks it up at its next
poll.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.cache.factory import build_cache
from quantum_router.catalog import load_catalog
from quantum_router.context import initial_policy
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.db.models import Experience
from quantum_router.execution import dense_features
from quantum_router.feedback import rating_quality
from quantum_router.learning.experience import LoggedExperience
from quantum_router.policy import Policy, policy_from_bytes
from quantum_router.policy_store import publish_policy
from quantum_router.settings import Settings


def logged(rows: Sequence[Experience], dim: int) -> list[LoggedExperience]:
    """Rows in the training form, keeping only those whose features have ``dim`` values."""
    return [
        LoggedExperience(
            features=dense_features(row.features),
            action=row.action,
            propensity=row.propensity,
            quality=row.quality,
            cost_usd=row.cost_usd,
            latency_ms=row.latency_ms,
            rating=rating_quality(int(row.feedback_rating)) if row.feedback_rating is not None else None,
        )
        for row in rows
        if row.features.get("dim") == dim
    ]


async def _served_policy(db: Database, settings: Settings) -> Policy:
    artifact = await db.read_primary(store.latest_policy)
    if artifact is not None:
        return policy_from_bytes(artifact.data)
    return initial_policy(settings, load_catalog(settings.catalog_file))


async def _load(settings: Settings, limit: int) -> tuple[Policy, list[LoggedExperience]]:
    db = Database(settings)
    try:
        await upgrade(db.primary)
        policy = await _served_policy(db, settings)

        async def _rows(session: AsyncSession) -> Sequence[Experience]:
            return await store.experiences_since(session, None, limit)

        rows = await db.read(_rows)
        return policy, logged(rows, policy.feature_spec.dim)
    finally:
        await db.dispose()


async def _publish(settings: Settings, policy: Policy) -> None:
    db = Database(settings)
    cache = build_cache(settings) if settings.redis_url else None
    try:
        await publish_policy(db, policy, cache)
    finally:
        await db.dispose()
        if cache is not None:
            await cache.close()


def main(argv: list[str], settings: Settings) -> int:
    """Parse ``argv`` (after ``train --from-log``), train, write and optionally publish."""
    parser = argparse.ArgumentParser(prog="quantum-router train --from-log", description=__doc__)
    parser.add_argument("--limit", type=int, default=100_000, help="newest experiences to read at most")
    parser.add_argument("--steps", type=int, default=20_000, help="experiences to sample while training")
    parser.add_argument("--output", type=Path, default=Path("policy.npz"))
    parser.add_argument("--publish", action="store_true", help="store it in the database for the service")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--version", default=None, help="policy version (default: dqn-<UTC time>)")
    args = parser.parse_args(argv)
    from quantum_router.learning.train import TrainConfig, train_from_log  # imports Ray lazily

    served, experiences = asyncio.run(_load(settings, args.limit))
    if not experiences:
        print("train: the experience log has no rows for the served feature spec", file=sys.stderr)
        return 2
    costs = served.model_costs or [
        load_catalog(settings.catalog_file).model(m).cost_per_1k_tokens for m in served.models
    ]
    config = TrainConfig(steps=args.steps, address=args.address, version=args.version)
    result = train_from_log(
        experiences, served.feature_spec, served.models, costs, config, text_model=served.text_model
    )
    result.policy.save(args.output)
    print(
        f"trained {result.policy.version} on {len(experiences)} experiences in {result.seconds_total:.1f} s; "
        f"wrote {args.output}"
    )
    if args.publish:
        asyncio.run(_publish(settings, result.policy))
        print(f"published {result.policy.version}; service replicas load it at their next poll")
    return 0
