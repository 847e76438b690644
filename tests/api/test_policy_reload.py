"""A running service switches to a newly published policy without a restart."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from fastapi.testclient import TestClient

from quantum_router.policy import Policy
from quantum_router.policy_store import publish_policy
from quantum_router.text_model import TextHashing, TextModel
from tests.conftest import ClientFactory, login


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
    from quantum_router.db import store
    from quantum_router.db.models import utcnow

    client: TestClient = client_factory()
    services = client.app.state.services  # type: ignore[attr-defined]

    async def _publish_garbage() -> None:
        async def _add(session: store.AsyncSession) -> None:
            await store.add_policy(session, "garbage-1", b"not a policy", utcnow())

        await services.db.write(_add)
        await services.policies.refresh(services.db)

    client.portal.call(_publish_garbage)  # type: ignore[union-attr]
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
