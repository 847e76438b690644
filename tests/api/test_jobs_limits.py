"""Asynchronous jobs are bounded: a cap per user on running jobs, a retention period for finished ones,
and no prompt kept in the jobs table."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

from quantum_router.users import create_user
from tests.conftest import ClientFactory, login

# The test catalog's "slow" model takes 100 s at scale 1: 3 s at the scale used here.
_SLOW = {"persona": "developer", "task_type": "chat", "options": {"model": "slow", "async": True}}
_FAST = {"prompt": "quick one", "persona": "developer", "task_type": "chat", "options": {"async": True}}


def _submit(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> Any:
    return client.post("/v1/execute", json=body, headers=auth)


def test_running_jobs_are_capped_per_user(client_factory: ClientFactory) -> None:
    client = client_factory(max_jobs_per_user=2, simulation_time_scale=0.03, request_timeout_seconds=30)
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(create_user, services.db, "bob", "bob-password-1", ["user"])  # type: ignore[union-attr]
    admin, bob = login(client), login(client, "bob", "bob-password-1")
    codes = [_submit(client, admin, {**_SLOW, "prompt": f"job {i}"}).status_code for i in range(2)]
    assert codes == [202, 202]
    refused = _submit(client, admin, {**_SLOW, "prompt": "one too many"})
    assert refused.status_code == 429
    assert refused.json()["reason"] == "too_many_jobs"
    assert int(refused.headers["retry-after"]) >= 1
    assert _submit(client, bob, {**_SLOW, "prompt": "bob's own"}).status_code == 202  # a cap per user


def test_finished_jobs_are_purged_after_the_retention_period(client_factory: ClientFactory) -> None:
    client = client_factory(job_retention_seconds=1.0, job_lease_seconds=0.6)  # maintenance every 0.2 s
    auth = login(client)
    url = _submit(client, auth, _FAST).json()["status_url"]
    deadline = time.monotonic() + 10
    while (job := client.get(url, headers=auth).json())[
        "status"
    ] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job["status"] == "succeeded"
    time.sleep(1.6)
    assert client.get(url, headers=auth).status_code == 404


def test_the_prompt_of_a_job_is_not_stored(client: TestClient, auth: dict[str, str]) -> None:
    secret = "my very private prompt 8f2c"
    job_id = _submit(client, auth, {**_FAST, "prompt": secret}).json()["job_id"]
    services = client.app.state.services  # type: ignore[attr-defined]
    row = client.portal.call(services.jobs.get, job_id)  # type: ignore[union-attr]
    assert "prompt" not in row.request
    assert secret not in json.dumps(row.request)
    assert len(row.request["prompt_sha256"]) == 64
