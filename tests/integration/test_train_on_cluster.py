"""`quantum-router train --address` on an existing Ray cluster started with `ray start --head`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantum_router.policy import load_policy
from quantum_router.settings import Settings
from tests.ports import free_port

pytestmark = pytest.mark.integration

DATA = Settings().data_dir
RAY = Path(sys.executable).parent / "ray"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture
def ray_head() -> Iterator[str]:
    # Ray's socket paths must stay under 107 bytes, so not pytest's long tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="qr-ray-", dir="/tmp")
    port = free_port()
    start = [
        str(RAY),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--temp-dir",
        temp_dir,
    ]
    subprocess.run(start, env=ENV, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=ENV, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_training_joins_an_existing_cluster(ray_head: str, tmp_path: Path) -> None:
    output = tmp_path / "policy.npz"
    result = subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", "train", "--dataset", str(DATA / "mmlu_anatomy.csv"),
         "--steps", "1000", "--output", str(output), "--address", ray_head],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected to Ray cluster" in result.stderr + result.stdout or "existing Ray cluster" in (
        result.stderr + result.stdout
    ), (result.stderr + result.stdout)[-3000:]
    policy = load_policy(output)
    assert policy.models == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
