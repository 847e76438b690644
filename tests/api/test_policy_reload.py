"""A running service switches to a newly published policy without a restart."""

from __future__ import annotations

import time

import numpy as np
from fastapi.testclient import TestClient

from quantum_router.policy import Policy
from quantum_router.policy_store import publish_policy
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
