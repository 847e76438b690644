"""``quantum-router serve --workers 2`` on real Redis: what the workers must share, they share."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.integration.servers import StandaloneRedis
from tests.serve_process import serve_process

pytestmark = pytest.mark.integration

_BODY = {"persona": "developer", "task_type": "chat"}


def _workers(parent: int) -> list[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]


def _fresh(base_url: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to either worker."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _token(base_url: str) -> dict[str, str]:
    login = _fresh(base_url, "POST", "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _scrape(base_url: str) -> tuple[str, float]:
    """(pid of the worker that answered, POST /v1/execute 200s it reports)."""
    text = _fresh(base_url, "GET", "/metrics").text
    pid = re.search(r'qr_db_pool_efficiency\{engine="primary",pid="(\d+)"\}', text)
    count = re.search(
        r'qr_http_request_duration_seconds_count\{method="POST",route="/v1/execute",status="200"\} (\S+)',
        text,
    )
    assert pid is not None and count is not None, text
    return pid.group(1), float(count.group(1))


def test_two_workers_add_up_their_metrics_and_share_tokens(
    tmp_path: Path, redis_standalone: StandaloneRedis
) -> None:
    env = {"QR_REDIS_URL": redis_standalone.url, "QR_CACHE_KEY_PREFIX": f"qr:{tmp_path.name}:"}
    with serve_process(tmp_path, "--workers", "2", **env) as (process, client):
        base = str(client.base_url)
        auth = _token(base)  # signed by one worker, accepted by both below
        statuses = [
            _fresh(base, "POST", "/v1/execute", json={**_BODY, "prompt": f"q {i}"}, headers=auth).status_code
            for i in range(30)
        ]
        assert statuses == [200] * 30
        answered: dict[str, float] = {}
        deadline = time.monotonic() + 60  # the second worker may still be starting
        while len(answered) < 2 and time.monotonic() < deadline:
            pid, count = _scrape(base)
            answered[pid] = count
        # Each worker served part of the 30, yet whichever answers the scrape reports all of them.
        assert sorted(answered) == sorted(str(p) for p in _workers(process.pid))
        assert set(answered.values()) == {30.0}


def test_rate_limits_stay_per_principal_across_workers(
    tmp_path: Path, redis_standalone: StandaloneRedis
) -> None:
    env = {
        "QR_REDIS_URL": redis_standalone.url,
        "QR_CACHE_KEY_PREFIX": f"qr:{tmp_path.name}:",
        "QR_RATE_LIMIT_BURST": "5",
        "QR_RATE_LIMIT_PER_MINUTE": "1",
    }
    with serve_process(tmp_path, "--workers", "2", **env) as (_, client):
        base = str(client.base_url)
        auth = _token(base)
        responses = [
            _fresh(base, "POST", "/v1/execute", json={**_BODY, "prompt": f"r {i}"}, headers=auth)
            for i in range(12)
        ]
        assert [r.status_code for r in responses].count(200) == 5  # not 5 per worker
        assert all(r.headers["Retry-After"] for r in responses if r.status_code == 429)


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(
    tmp_path: Path, redis_standalone: StandaloneRedis
) -> None:
    env = {"QR_REDIS_URL": redis_standalone.url, "QR_CACHE_KEY_PREFIX": f"qr:{tmp_path.name}:"}
    with serve_process(tmp_path, "--workers", "2", **env) as (process, client):
        deadline = time.monotonic() + 60
        while len(workers := _workers(process.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        shared = dict(
            line.split("=", 1)
            for line in Path(f"/proc/{workers[0]}/environ").read_text().split("\0")
            if "=" in line
        )["PROMETHEUS_MULTIPROC_DIR"]
        os.kill(workers[0], signal.SIGKILL)
        while workers[0] in (replaced := _workers(process.pid)) or len(replaced) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        auth = _token(str(client.base_url))
        for i in range(6):
            response = _fresh(
                str(client.base_url), "POST", "/v1/execute", json={**_BODY, "prompt": f"k {i}"}, headers=auth
            )
            assert response.status_code == 200, response.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)
        assert not Path(shared).exists()


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", "serve", "--workers", "2"],
        env={**os.environ, "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "QR_REDIS_URL" in result.stderr
