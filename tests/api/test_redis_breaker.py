"""A Redis that never answers costs one timeout, not one per call of every request: the circuit breaker
skips it for a while, so latency stays near normal through the outage."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quantum_router.cache.breaker import CircuitBreaker
from tests.conftest import ClientFactory, login


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A Redis URL on loopback where connections are taken by the kernel and never answered: a listening
    socket that is never accepted (the kernel completes handshakes into its backlog, nothing reads)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}"


def _latencies(client: TestClient, tag: str, n: int) -> list[float]:
    auth = login(client)
    samples = []
    for i in range(n):
        body = {"prompt": f"{tag} {i}", "persona": "developer", "task_type": "chat"}
        started = time.perf_counter()
        response = client.post("/v1/execute", json=body, headers=auth)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


def test_p50_stays_near_normal_while_redis_drops_everything(
    client_factory: ClientFactory, black_hole: str
) -> None:
    normal = statistics.median(_latencies(client_factory(), "normal", 9))
    # 0.1 s socket timeout: one cache or limiter call waits up to 0.4 s, a request three of them.
    outage = client_factory(redis_url=black_hole, redis_timeout_seconds=0.1, redis_breaker_seconds=30)
    during = _latencies(outage, "outage", 9)
    assert statistics.median(during) < normal + 0.1, (normal, during)
    health = outage.get("/readyz")  # a probe does not wait on the open circuit either
    assert health.status_code == 200 and health.json()["cache"] == "degraded"
    assert health.elapsed.total_seconds() < 0.2


def test_the_breaker_probes_once_after_the_pause_and_closes_on_success(tmp_path: Path) -> None:
    now = [0.0]
    breaker = CircuitBreaker(5.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure("TimeoutError")
    assert not breaker.allow()
    now[0] = 5.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.failure("TimeoutError")
    now[0] = 9.9
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.allow() and breaker.allow()
    now[0] = 20.0
    breaker.failure("TimeoutError")
    now[0] = 25.0
    assert breaker.allow()  # a probe that never reports back...
    now[0] = 30.0
    assert breaker.allow()  # ...does not keep the circuit open for good
