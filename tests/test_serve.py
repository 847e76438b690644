"""``quantum-router serve`` on SIGTERM: in-flight requests finish within the grace period, then it exits."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from quantum_router.app import create_app
from quantum_router.server import server_config
from tests.conftest import ADMIN_PASSWORD, make_settings
from tests.ports import free_port
from tests.serve_process import serve_process

# The test catalog's "slow" model takes 100 s; the scale sets how long an in-flight request runs.
_SLOW = {"prompt": "hi", "persona": "developer", "task_type": "chat", "options": {"model": "slow"}}


def test_the_grace_period_reaches_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_settings(tmp_path).shutdown_grace_seconds == 30
    monkeypatch.setenv("QR_SHUTDOWN_GRACE_SECONDS", "7")
    settings = make_settings(tmp_path)
    assert server_config(create_app(settings), settings).timeout_graceful_shutdown == 7


def _start_slow_request(client: httpx.Client) -> tuple[threading.Thread, list[httpx.Response | Exception]]:
    """POST a slow execute in a thread and return once the server counts it in flight."""
    token = client.post("/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    outcome: list[httpx.Response | Exception] = []

    def post() -> None:
        try:
            outcome.append(client.post("/v1/execute", json=_SLOW, headers=headers))
        except httpx.TransportError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=post)
    worker.start()
    deadline = time.monotonic() + 10
    while "quantum_router_inflight_requests 1.0" not in client.get("/metrics").text:
        assert time.monotonic() < deadline, "the request never showed as in flight"
        time.sleep(0.02)
    return worker, outcome


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    with serve_process(tmp_path, QR_SIMULATION_TIME_SCALE="0.02") as (process, client):  # slow: 2 s
        worker, outcome = _start_slow_request(client)
        process.send_signal(signal.SIGTERM)
        worker.join(30)
        response = outcome[0]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "slow"
        process.wait(30)
        # uvicorn re-raises the signal once it has shut down, so the exit status is SIGTERM's.
        assert process.returncode in (0, -signal.SIGTERM)


def test_sigterm_cancels_what_outlives_the_grace_period(tmp_path: Path) -> None:
    env = {"QR_SIMULATION_TIME_SCALE": "0.3", "QR_SHUTDOWN_GRACE_SECONDS": "1"}  # slow: 30 s
    with serve_process(tmp_path, **env) as (process, client):
        worker, outcome = _start_slow_request(client)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        assert time.monotonic() - signalled < 10
        worker.join(30)
        assert not isinstance(outcome[0], httpx.Response) or outcome[0].status_code != 200


def test_metrics_move_to_their_own_port_behind_the_token(tmp_path: Path) -> None:
    metrics_port, token = free_port(), "scrape-token-" + "t" * 24
    with serve_process(tmp_path, QR_METRICS_PORT=str(metrics_port), QR_METRICS_TOKEN=token) as (_, client):
        assert client.get("/metrics").status_code == 404  # not on the API's port any more
        scrape = f"http://127.0.0.1:{metrics_port}/metrics"
        assert httpx.get(scrape, timeout=10).status_code == 401
        response = httpx.get(scrape, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200
        assert "quantum_router_inflight_requests" in response.text
