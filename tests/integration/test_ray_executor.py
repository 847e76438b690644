"""The Ray Serve executor against a real local Ray instance, compared with the asyncio executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quantum_router.catalog import load_catalog
from quantum_router.executors.asyncio_executor import AsyncioExecutor
from quantum_router.executors.base import Job, VariationOutcome
from quantum_router.executors.ray_executor import RayServeExecutor
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.scoring import score_answers
from quantum_router.settings import Settings
from quantum_router.variations import plan_variations
from tests.conftest import TEST_CATALOG
from tests.ports import free_port

pytestmark = pytest.mark.integration

STARTUP_SECONDS = 240


@pytest.fixture(scope="module")
def ray_serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray instance with the variations app deployed, in its own process group."""
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "ray-serve.log"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "QR_CATALOG_FILE": str(TEST_CATALOG),
        "QR_SIMULATION_TIME_SCALE": "0.01",
    }
    args = [sys.executable, "-m", "quantum_router.cli", "ray-serve", "--port", str(port), "--num-cpus", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "variations served" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "ray serve did not start"
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt the driver (Serve shuts down, Ray stops with it), then kill whatever is left."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _best(outcomes: list[VariationOutcome]) -> tuple[str, float, str]:
    ok = [o for o in outcomes if o.completion is not None]
    texts = [o.completion.text for o in ok if o.completion]
    scores = score_answers(texts, [0.5] * len(ok), ["stop"] * len(ok))
    i = max(range(len(ok)), key=lambda k: scores[k])
    return ok[i].model, ok[i].plan.temperature, texts[i]


async def test_ray_executor_picks_the_same_best_variation_as_asyncio(ray_serve_url: str) -> None:
    settings = Settings(catalog_file=TEST_CATALOG, simulation_time_scale=0.01)
    providers = ProviderRegistry(load_catalog(Path(settings.catalog_file)), settings)
    local = AsyncioExecutor(providers)
    remote = RayServeExecutor(ray_serve_url)
    try:
        for i in range(8):
            job = Job(
                prompt=f"analyse module {i}",
                persona="architect",
                task_type="code_analysis",
                max_tokens=256,
                timeout_seconds=10.0,
            )
            plans = plan_variations(["strong", "cheap"], 3 + i % 3)
            local_outcomes = await local.run(job, plans)
            remote_outcomes = await remote.run(job, plans)
            assert [o.plan for o in remote_outcomes] == plans
            assert all(o.completion is not None for o in remote_outcomes)
            assert _best(remote_outcomes) == _best(local_outcomes)
    finally:
        await remote.close()
        await providers.close()


async def test_unreachable_cluster_fails_the_variations_instead_of_hanging() -> None:
    executor = RayServeExecutor(f"http://127.0.0.1:{free_port()}")
    job = Job(prompt="x", persona="architect", task_type="chat", max_tokens=16, timeout_seconds=1.0)
    outcomes = await executor.run(job, plan_variations(["cheap"], 2))
    await executor.close()
    assert [o.completion for o in outcomes] == [None, None]
    assert all("ray executor unavailable" in (o.error or "") for o in outcomes)


def test_service_runs_variations_through_ray(ray_serve_url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from quantum_router.app import create_app
    from tests.conftest import login, make_settings

    with TestClient(create_app(make_settings(tmp_path, ray_serve_url=ray_serve_url))) as client:
        body = {"prompt": "Review the scheduler", "persona": "architect", "task_type": "code_analysis"}
        result = client.post("/v1/execute", json=body, headers=login(client)).json()
    assert len(result["variations"]) == 3
    assert result["answer"].startswith("[simulated]")
    assert httpx.get(ray_serve_url + "/-/healthz", timeout=5).status_code == 200
