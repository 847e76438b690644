"""Async jobs on one PostgreSQL shared by several replicas of the service: a replica's start never fails
the jobs another one is running; a job whose replica died is failed once its lease lapses; a final
state stays final."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.app import create_app
from quantum_router.db import store
from quantum_router.db.models import utcnow
from tests.conftest import login, make_settings
from tests.integration.servers import PostgresStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# The test catalog's "slow" model takes 100 s at scale 1: 3 s here.
_SLOW_JOB = {
    "prompt": "a long job",
    "persona": "developer",
    "task_type": "chat",
    "options": {"model": "slow", "async": True, "bypass_cache": True},
}


@pytest.fixture(autouse=True)
def _healthy(postgres_stack: PostgresStack) -> None:
    """Every test starts with the stack up, whatever an earlier test stopped."""
    postgres_stack.start_all()
    postgres_stack.wait_replicating(120)


@contextmanager
def _replica(tmp_path: Path, pg: PostgresStack, **overrides: Any) -> Iterator[TestClient]:
    """One replica of the service on the shared primary."""
    values: dict[str, Any] = {"simulation_time_scale": 0.03, "request_timeout_seconds": 30.0, **overrides}
    settings = make_settings(tmp_path, database_url=pg.primary_url, **values)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _wait_for(client: TestClient, url: str, auth: dict[str, str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(url, headers=auth).json()
        if job["status"] != "pending" or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_starting_a_replica_leaves_the_jobs_of_the_others_running(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    with _replica(tmp_path, postgres_stack) as first:
        auth = login(first)
        url = first.post("/v1/execute", json=_SLOW_JOB, headers=auth).json()["status_url"]
        with _replica(tmp_path, postgres_stack) as second:  # its start-up runs while the job does
            assert second.get(url, headers=auth).json()["status"] == "pending"
            job = _wait_for(second, url, auth)
        assert job["status"] == "succeeded", job
        assert job["result"]["model"] == "slow"


def test_a_job_whose_replica_died_is_failed_once_its_lease_lapses(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    with _replica(tmp_path, postgres_stack, job_lease_seconds=1.5) as client:
        auth = login(client)
        services = client.app.state.services  # type: ignore[attr-defined]

        async def orphan(heartbeat_age: float) -> str:
            async def _add(session: AsyncSession) -> str:
                admin = await store.user_by_name(session, "admin")
                assert admin is not None
                job = await store.add_job(session, admin.id, {"prompt_sha256": "x"}, owner="dead-host:1:abcd")
                job.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age)
                return job.id

            job_id: str = await services.db.write(_add)
            return job_id

        lapsed = client.portal.call(orphan, 10.0)  # type: ignore[union-attr]
        fresh = client.portal.call(orphan, 0.0)  # type: ignore[union-attr]
        time.sleep(1.0)  # more than one maintenance round (every 0.5 s), less than the lease
        assert (
            client.get(f"/v1/jobs/{lapsed}", headers=auth).json()["error"]["detail"].startswith("interrupted")
        )
        assert client.get(f"/v1/jobs/{fresh}", headers=auth).json()["status"] == "pending"
        time.sleep(1.5)  # nobody renews the fresh one: it lapses too
        assert client.get(f"/v1/jobs/{fresh}", headers=auth).json()["status"] == "failed"

        # A final state is final: the dead replica's late result (it was only slow) changes nothing.
        async def finish_late() -> bool:
            async def _finish(session: AsyncSession) -> bool:
                return await store.finish_job(session, lapsed, {"answer": "late"}, None)

            stored: bool = await services.db.write(_finish)
            return stored

        assert client.portal.call(finish_late) is False  # type: ignore[union-attr]
        assert client.get(f"/v1/jobs/{lapsed}", headers=auth).json()["status"] == "failed"


def test_a_replica_that_shuts_down_fails_its_own_unfinished_jobs(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    with _replica(tmp_path, postgres_stack) as other:
        auth = login(other)
        with _replica(tmp_path, postgres_stack) as leaving:
            url = leaving.post("/v1/execute", json=_SLOW_JOB, headers=auth).json()["status_url"]
        job = other.get(url, headers=auth).json()
        assert job["status"] == "failed"
        assert job["error"]["detail"] == "interrupted: the replica running it shut down"
