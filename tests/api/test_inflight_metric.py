"""quantum_router_inflight_requests: the autoscaler's custom metric."""

import re
import threading
import time

from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import ClientFactory, login

_GAUGE = re.compile(r"^quantum_router_inflight_requests (\S+)$", re.MULTILINE)


def _inflight(client: TestClient) -> float:
    match = _GAUGE.search(client.get("/metrics").text)
    assert match is not None, "quantum_router_inflight_requests is not exposed"
    return float(match.group(1))


def test_inflight_counts_a_running_request_but_not_the_scrape(client_factory: ClientFactory) -> None:
    # The catalog's "slow" model takes 100 s; scaled to about 1.5 s, well inside the request deadline.
    client = client_factory(simulation_time_scale=0.015)
    auth = login(client)
    assert _inflight(client) == 0
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat", "options": {"model": "slow"}}
    done: list[Response] = []
    worker = threading.Thread(target=lambda: done.append(client.post("/v1/execute", json=body, headers=auth)))
    worker.start()
    deadline = time.monotonic() + 5
    seen = 0.0
    while not done and time.monotonic() < deadline:
        seen = max(seen, _inflight(client))
        time.sleep(0.05)
    worker.join(10)
    assert done[0].status_code == 200, done[0].text
    assert seen == 1  # the execute call, not the scrape reading it
    assert _inflight(client) == 0


def test_inflight_returns_to_zero_after_failed_and_rejected_requests(client: TestClient) -> None:
    auth = login(client)
    client.get("/v1/jobs/unknown", headers=auth)  # 404
    client.post("/v1/execute", content=b"x" * 300_000, headers=auth)  # 413 from the middleware itself
    client.post("/v1/execute", json={"prompt": "hi"}, headers=auth)  # 422
    assert _inflight(client) == 0
