"""Publishing and hot reload: a broken artifact is refused when published and skipped when polled."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from quantum_router.cache.memory import MemoryCache
from quantum_router.catalog import load_catalog
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.db.models import utcnow
from quantum_router.default_policy import prior_policy
from quantum_router.policy import Policy, PolicyFormatError
from quantum_router.policy_store import (
    POLICY_DATA_KEY,
    POLICY_META_KEY,
    PolicyStore,
    publish_artifact,
    publish_policy,
)
from tests.conftest import TEST_CATALOG, make_settings
from tests.policy_artifacts import BAD_ARTIFACTS, BadArtifact

POLL_SECONDS = 0.01


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(make_settings(tmp_path))
    await upgrade(database.primary)
    yield database
    await database.dispose()


def _prior() -> Policy:
    return prior_policy(load_catalog(TEST_CATALOG))


def _two_layers(version: str) -> Policy:
    """A valid policy with an encoder, over the prior's features and models."""
    prior = _prior()
    n = len(prior.models)
    encoder = [(np.ones((prior.feature_spec.dim, 8), np.float32), np.zeros(8, np.float32))]
    advantage = [(np.ones((8, n), np.float32), np.arange(n, dtype=np.float32))]
    return Policy(version, prior.models, prior.feature_spec, encoder, advantage)


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    pytest.fail(f"timed out waiting until {what}")


async def _latest_version(db: Database) -> str | None:
    artifact = await db.read_primary(store.latest_policy)
    return None if artifact is None else artifact.version


async def _store_directly(db: Database, cache: MemoryCache | None, version: str, data: bytes) -> None:
    """Put an artifact where the poller looks, as a buggy publisher could, bypassing the publish check."""
    published = utcnow()
    if cache is not None:
        meta = {"version": version, "published": published.timestamp()}
        await cache.set(POLICY_DATA_KEY, data, 3600)
        await cache.set(POLICY_META_KEY, json.dumps(meta).encode(), 3600)
        return

    async def _add(session: store.AsyncSession) -> None:
        await store.add_policy(session, version, data, published)

    await db.write(_add)


@pytest.mark.parametrize("make", BAD_ARTIFACTS.values(), ids=BAD_ARTIFACTS.keys())
async def test_a_broken_artifact_is_refused_at_publish(db: Database, make: BadArtifact) -> None:
    cache = MemoryCache(16)
    with pytest.raises(PolicyFormatError):
        await publish_artifact(db, make(_prior(), "broken-1"), cache)
    assert await _latest_version(db) is None
    assert await cache.get(POLICY_META_KEY) is None


async def test_a_policy_whose_layers_were_changed_after_construction_is_refused_at_publish(
    db: Database,
) -> None:
    policy = _two_layers("reshaped-1")
    policy.advantage[0] = (np.ones((4, len(policy.models)), np.float32), policy.advantage[0][1])
    with pytest.raises(PolicyFormatError, match=r"advantage\.0 takes 4 inputs, encoder\.0 gives 8"):
        await publish_policy(db, policy)
    assert await _latest_version(db) is None


@pytest.mark.parametrize("source", ["database", "cache"])
@pytest.mark.parametrize("make", BAD_ARTIFACTS.values(), ids=BAD_ARTIFACTS.keys())
async def test_the_poller_skips_a_broken_artifact_and_serves_the_next_good_one(
    db: Database, make: BadArtifact, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCache(16) if source == "cache" else None
    policies = PolicyStore(_prior())
    poller = asyncio.create_task(policies.poll(db, POLL_SECONDS, cache))
    try:
        with caplog.at_level(logging.INFO, logger="quantum_router.policy_store"):
            await _store_directly(db, cache, "broken-1", make(_prior(), "broken-1"))
            # Refused (an error) or, wrongly, served; a poller that died on it logs nothing.
            await _until(lambda: "broken-1" in caplog.text, "the poller looks at the broken artifact")
            await asyncio.sleep(5 * POLL_SECONDS)
        assert policies.current.version == "prior-1"
        assert any("broken-1" in r.message for r in caplog.records if r.levelno == logging.ERROR)
        assert not poller.done()
        await publish_policy(db, _two_layers("good-2"), cache)
        await _until(lambda: policies.current.version == "good-2", "the next good policy is served")
    finally:
        poller.cancel()


async def test_the_poller_survives_an_unexpected_error(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [RuntimeError("a bug")]
    refresh = PolicyStore.refresh

    async def flaky(self: PolicyStore, db: Database, cache: MemoryCache | None = None) -> bool:
        if failures:
            raise failures.pop()
        return await refresh(self, db, cache)

    monkeypatch.setattr(PolicyStore, "refresh", flaky)
    policies = PolicyStore(_prior())
    poller = asyncio.create_task(policies.poll(db, POLL_SECONDS))
    try:
        await _until(lambda: not failures, "the first poll fails")
        await publish_policy(db, _two_layers("good-2"))
        await _until(lambda: policies.current.version == "good-2", "the published policy is served")
    finally:
        poller.cancel()
    assert "policy poll failed" in caplog.text
