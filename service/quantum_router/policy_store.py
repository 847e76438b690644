"""The policy being served, published policies in the database, and hot reload without a restart."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.cache.base import Cache, CacheUnavailable
from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.models import utcnow
from quantum_router.policy import Policy, PolicyFormatError, policy_from_bytes

log = logging.getLogger(__name__)


# Keys of the copy kept in Redis (when configured): replicas can load a new policy while the database is down.
POLICY_META_KEY = "policy:meta"
POLICY_DATA_KEY = "policy:data"
POLICY_CACHE_TTL_SECONDS = 365 * 24 * 3600.0


def _epoch(moment: datetime) -> float:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class PolicyStore:
    """Holds the current policy; replacing it is one reference assignment, so readers never see a mix.

    Publications are ordered by their time, so a stale copy in one store never replaces a newer policy
    loaded from the other."""

    def __init__(self, initial: Policy, on_swap: Callable[[str], None] | None = None) -> None:
        self._current = initial
        self._published = 0.0  # the shipped or file policy predates every publication
        self._on_swap = on_swap
        if on_swap is not None:
            on_swap(initial.version)

    @property
    def current(self) -> Policy:
        """The policy to route with now."""
        return self._current

    def swap(self, policy: Policy, published: float) -> None:
        """Serve ``policy`` from the next request on."""
        self._current = policy
        self._published = published
        if self._on_swap is not None:
            self._on_swap(policy.version)
        log.info("now serving policy %s", policy.version)

    def _load(self, data: bytes, version: str, published: float) -> bool:
        try:
            policy = policy_from_bytes(data)
        except PolicyFormatError as exc:
            log.error("published policy %s is invalid, keeping %s: %s", version, self._current.version, exc)
            self._published = max(self._published, published)  # do not retry the same broken artifact
            return False
        self.swap(policy, published)
        return True

    async def refresh(self, db: Database, cache: Cache | None = None) -> bool:
        """Load the newest published policy, from Redis when it has it, else the database; True if swapped."""
        if cache is not None and await self._refresh_from_cache(cache):
            return True
        stamp = await db.read_primary(store.latest_policy_stamp)
        if stamp is None or _epoch(stamp[1]) <= self._published:
            return False
        artifact = await db.read_primary(store.latest_policy)
        if artifact is None:
            return False
        return self._load(artifact.data, artifact.version, _epoch(artifact.created_at))

    async def _refresh_from_cache(self, cache: Cache) -> bool:
        try:
            raw = await cache.get(POLICY_META_KEY)
            if raw is None:
                return False
            meta = json.loads(raw)
            version, published = str(meta["version"]), float(meta["published"])
            if published <= self._published:
                return False
            data = await cache.get(POLICY_DATA_KEY)
        except (CacheUnavailable, ValueError, KeyError, TypeError) as exc:
            log.warning("policy copy in the cache unusable: %s", exc)
            return False
        return data is not None and self._load(data, version, published)

    async def poll(self, db: Database, interval_seconds: float, cache: Cache | None = None) -> None:
        """Refresh forever (cancel the task to stop); outages and errors only delay the next check."""
        while True:
            try:
                await self.refresh(db, cache)
            except DatabaseUnavailable as exc:
                log.warning("policy poll skipped: %s", exc)
            except Exception:
                # Anything else is a bug, but a dead poller would silently pin this replica to its policy.
                log.exception("policy poll failed; still serving %s", self._current.version)
            await asyncio.sleep(interval_seconds)


async def publish_policy(db: Database, policy: Policy, cache: Cache | None = None) -> None:
    """Store ``policy`` in the database (and Redis, when given) so every replica picks it up."""
    await publish_artifact(db, policy.to_bytes(), cache)


async def publish_artifact(db: Database, data: bytes, cache: Cache | None = None) -> None:
    """Publish a serialised policy; raises :class:`PolicyFormatError`, storing nothing, for an artifact
    that replicas could not serve (the check they run before serving it)."""
    policy = policy_from_bytes(data)
    published = utcnow()

    async def _add(session: AsyncSession) -> None:
        await store.add_policy(session, policy.version, data, published)

    await db.write(_add)
    if cache is None:
        return
    meta = json.dumps({"version": policy.version, "published": _epoch(published)}).encode()
    try:
        # Data first: a replica that sees the new meta must find the new data.
        await cache.set(POLICY_DATA_KEY, data, POLICY_CACHE_TTL_SECONDS)
        await cache.set(POLICY_META_KEY, meta, POLICY_CACHE_TTL_SECONDS)
    except CacheUnavailable as exc:
        log.warning("policy %s published to the database only: %s", policy.version, exc)
