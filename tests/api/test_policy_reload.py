"""A running service switches to a newly published policy without a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from quantum_router.catalog import load_catalog
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.db.models import utcnow
from quantum_router.default_policy import prior_policy
from quantum_router.policy import Policy
from quantum_router.policy_store import publish_policy
from quantum_router.text_model import TextHashing, TextModel
from tests.conftest import TEST_CATALOG, ClientFactory, login, make_settings
from tests.policy_artifacts import truncated, wrong_layer_shapes


def _always(policy: Policy, model: str, version: str) -> Policy:
    """A linear policy that prefers ``model`` for every request."""
    weights = np.zeros((policy.feature_spec.dim, len(policy.models)), dtype=np.float32)
    bias = np.array([1.0 if m == model else 0.0 for m in policy.models], dtype=np.float32)
    return Policy(version, policy.models, policy.feature_spec, [], [(weights, bias)], activation="linear")


def test_published_policy_is_served_after_the_next_poll(client_factory: ClientFactory) -> None:
    client: TestClient = client_factory(policy_poll_seconds=0.05)
    auth = login(client)
    services = client.app.state.services  # type: ignore[attr-defined]
    body = {
        "prompt": "hello there",
        "persona": "developer",
        "task_type": "chat",
        "options": {"bypass_cache": True},
    }
    assert client.post("/v1/execute", json=body, headers=auth).json()["model"] == "strong"

    client.portal.call(publish_policy, services.db, _always(services.policies.current, "cheap", "test-2"))  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while client.get("/v1/capabilities").json()["policy_version"] != "test-2":
        assert time.monotonic() < deadline, "policy was not reloaded"
        time.sleep(0.02)
    result = client.post("/v1/execute", json=body, headers=auth).json()
    assert result["policy_version"] == "test-2"
    assert result["model"] == "cheap"
    assert client.get("/v1/health").json()["policy_version"] == "test-2"
    metrics = client.get("/metrics").text
    assert 'qr_policy_loaded{version="test-2"} 1.0' in metrics
    assert 'version="prior-1"' not in metrics


def test_a_broken_published_policy_is_not_served(client_factory: ClientFactory) -> None:
    client: TestClient = client_factory()
    services = client.app.state.services  # type: ignore[attr-defined]

    async def _publish_garbage() -> None:
        async def _add(session: store.AsyncSession) -> None:
            await store.add_policy(session, "garbage-1", b"not a policy", utcnow())

        await services.db.write(_add)
        await services.policies.refresh(services.db)

    client.portal.call(_publish_garbage)  # type: ignore[union-attr]
    assert client.get("/v1/capabilities").json()["policy_version"] == "prior-1"


def test_requests_keep_working_while_a_broken_policy_is_published(
    client_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client: TestClient = client_factory(policy_poll_seconds=0.05)
    auth = login(client)
    services = client.app.state.services  # type: ignore[attr-defined]
    body = {"prompt": "hello", "persona": "developer", "task_type": "chat", "options": {"bypass_cache": True}}

    async def _publish_unchecked() -> None:
        data = wrong_layer_shapes(services.policies.current, "broken-2")

        async def _add(session: store.AsyncSession) -> None:
            await store.add_policy(session, "broken-2", data, utcnow())

        await services.db.write(_add)

    with caplog.at_level(logging.INFO, logger="quantum_router.policy_store"):
        client.portal.call(_publish_unchecked)  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while "broken-2" not in caplog.text:  # refused (an error) or, wrongly, served
            assert time.monotonic() < deadline, "the poller never looked at the broken policy"
            time.sleep(0.02)
    answer = client.post("/v1/execute", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["policy_version"] == "prior-1"
    assert any("broken-2" in r.message for r in caplog.records if r.levelno == logging.ERROR)

    client.portal.call(publish_policy, services.db, _always(services.policies.current, "cheap", "test-3"))  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while client.get("/v1/capabilities").json()["policy_version"] != "test-3":
        assert time.monotonic() < deadline, "the next good policy was not loaded"
        time.sleep(0.02)
    assert client.post("/v1/execute", json=body, headers=auth).json()["model"] == "cheap"


def test_a_broken_published_artifact_does_not_stop_start_up(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    async def _publish_truncated() -> None:
        db = Database(make_settings(tmp_path))
        try:
            await upgrade(db.primary)
            data = truncated(prior_policy(load_catalog(TEST_CATALOG)), "broken-1")

            async def _add(session: store.AsyncSession) -> None:
                await store.add_policy(session, "broken-1", data, utcnow())

            await db.write(_add)
        finally:
            await db.dispose()

    asyncio.run(_publish_truncated())
    client = client_factory()
    assert client.get("/v1/capabilities").json()["policy_version"] == "prior-1"


def _by_wording(policy: Policy, version: str) -> Policy:
    """A policy whose Q-values are its text model's scores: "integral" means strong, anything else cheap."""
    models = policy.models
    hashing = TextHashing(buckets=1024)
    coef = np.zeros((1024, len(models)), np.float32)
    (bucket,) = hashing.buckets_of("integral")
    coef[bucket, models.index("strong")] = 40.0
    coef[bucket, models.index("cheap")] = -40.0
    prior = {"cheap": 2.0, "strong": 0.0}
    intercept = np.array([prior.get(m, -5.0) for m in models], np.float32)
    text = TextModel(hashing, np.ones(1024, np.float32), coef, intercept)
    spec = dataclasses.replace(policy.feature_spec, text_scores=len(models))
    weights = np.zeros((spec.dim, len(models)), np.float32)
    weights[-len(models) :] = np.eye(len(models), dtype=np.float32)
    layer = (weights, np.zeros(len(models), np.float32))
    return Policy(version, models, spec, [], [layer], activation="linear", text_model=text)


def test_published_policy_with_a_text_model_routes_by_wording(client_factory: ClientFactory) -> None:
    client: TestClient = client_factory(policy_poll_seconds=0.05)
    auth = login(client)
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(publish_policy, services.db, _by_wording(services.policies.current, "text-1"))  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while client.get("/v1/capabilities").json()["policy_version"] != "text-1":
        assert time.monotonic() < deadline, "policy was not reloaded"
        time.sleep(0.02)

    def model_for(prompt: str) -> str:
        body = {"prompt": prompt, "persona": "developer", "task_type": "chat"}
        body["options"] = {"bypass_cache": True}
        answer = client.post("/v1/execute", json=body, headers=auth).json()
        assert answer["policy_version"] == "text-1"
        return str(answer["model"])

    assert model_for("What is the integral of x squared from 0 to 1?") == "strong"
    assert model_for("What is the capital of France?") == "cheap"
