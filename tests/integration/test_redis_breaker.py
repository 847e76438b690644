"""A real Redis that hangs: requests stay fast through the outage, and the cache is used again after it."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quantum_router.app import create_app
from tests.conftest import login, make_settings
from tests.integration.servers import StandaloneRedis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_a_hung_redis_is_skipped_then_used_again(tmp_path: Path, redis_standalone: StandaloneRedis) -> None:
    settings = make_settings(
        tmp_path,
        redis_url=redis_standalone.url,
        cache_key_prefix=f"qr:test:{tmp_path.name}:",
        redis_breaker_seconds=2.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        auth = login(client)

        def execute(i: int) -> tuple[float, str]:
            body = {"prompt": f"breaker {i}", "persona": "developer", "task_type": "chat"}
            started = time.perf_counter()
            response = client.post("/v1/execute", json=body, headers=auth)
            assert response.status_code == 200, response.text
            return time.perf_counter() - started, response.json()["cache"]

        normal = statistics.median(execute(i)[0] for i in range(10))
        redis_standalone.pause()
        try:
            during = [execute(100 + i)[0] for i in range(10)]
        finally:
            redis_standalone.resume()
        # One request paid the timeout and opened the circuit; the rest did not wait.
        assert statistics.median(during) < normal + 0.1, (normal, during)
        assert sorted(during)[-2] < normal + 0.1, during
        time.sleep(2.5)  # the pause ends; the next call probes Redis, finds it, closes the circuit
        assert execute(0)[1] == "hit"
        assert [execute(1000)[1], execute(1000)[1]] == ["miss", "hit"]
