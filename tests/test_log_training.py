"""Training on the service's own experience log, published to the running service."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quantum_router.policy import load_policy
from tests.conftest import ClientFactory, login
from tests.text_policy import text_policy

pytestmark = pytest.mark.integration


def test_policy_trained_on_the_log_is_published_and_served(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    # Explore a lot so every model gets logged outcomes to learn from.
    client: TestClient = client_factory(epsilon=0.6, policy_poll_seconds=0.2)
    auth = login(client)
    for i in range(60):
        body = {"prompt": f"task {i}", "persona": "developer", "task_type": ("chat", "code_analysis")[i % 2]}
        assert client.post("/v1/execute", json=body, headers=auth).status_code == 200
    history = client.get("/v1/experiences?limit=200", headers=auth).json()
    assert (
        client.post(
            "/v1/feedback", json={"experience_id": history[0]["experience_id"], "rating": 5}, headers=auth
        ).status_code
        == 200
    )

    output = tmp_path / "from-log.npz"
    env = {
        "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
        "QR_CATALOG_FILE": str(Path(__file__).parent / "data" / "catalog.yaml"),
        "RAY_AUTH_MODE": "disabled",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", "train", "--from-log", "--steps", "1500", "--output",
         str(output), "--publish", "--force", "--version", "log-test-1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # Chat runs one variation: only its failures (an explored "broken" choice) and the rating are observed.
    # code_analysis runs three, so agreement labels every one of those.
    used = re.search(r"using (\d+) of 60 experiences with an observed outcome: (.*)", result.stdout)
    assert used is not None, result.stdout
    count = int(used.group(1))
    assert 31 <= count < 60, result.stdout
    assert "rating 1" in used.group(2) and "agreement" in used.group(2)
    assert f"on {count} experiences" in result.stdout
    # The gate valued both policies on the logged rows; --force publishes whatever it said (its verdict on a
    # 1,500-step policy against the catalog prior is not this test's subject: tests/learning/test_gate.py).
    assert f"off-policy value on {count} logged rows" in result.stdout
    policy = load_policy(output)
    assert policy.version == "log-test-1"
    assert policy.models == ["cheap", "strong", "broken", "slow"]
    assert policy.info["gate"]["rows"] == count
    listed = subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", "policy", "list"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert re.search(rf"log-test-1\t\S+\t(passed|failed \(forced\)) on {count} rows", listed), listed

    deadline = time.monotonic() + 10
    while client.get("/v1/capabilities").json()["policy_version"] != "log-test-1":
        assert time.monotonic() < deadline, "the service did not load the policy trained on its log"
        time.sleep(0.1)
    served = client.post(
        "/v1/execute", json={"prompt": "new", "persona": "developer", "task_type": "chat"}, headers=auth
    ).json()
    assert served["policy_version"] == "log-test-1"


def test_the_served_text_model_is_refitted_on_the_logged_buckets(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    served = text_policy(tmp_path / "text.npz")
    assert served.text_model is not None
    client: TestClient = client_factory(policy_file=tmp_path / "text.npz", epsilon=0.6)
    auth = login(client)
    for i in range(60):
        # code_analysis runs three variations, so agreement labels each of them.
        body = {"prompt": f"explain function number {i} of module {i % 7}", "persona": "developer",
                "task_type": "code_analysis"}  # fmt: skip
        assert client.post("/v1/execute", json=body, headers=auth).status_code == 200
    output = tmp_path / "from-log.npz"
    env = {
        "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
        "QR_CATALOG_FILE": str(Path(__file__).parent / "data" / "catalog.yaml"),
        "QR_POLICY_FILE": str(tmp_path / "text.npz"),
        "RAY_AUTH_MODE": "disabled",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", "train", "--from-log", "--steps", "1000", "--output",
         str(output), "--version", "text-refit-1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    refit = re.search(
        r"text model refitted toward the served one on logged rows with buckets: (.*)", result.stdout
    )
    assert refit is not None, result.stdout
    rows = {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", refit.group(1))}
    assert set(rows) == {"cheap", "strong", "broken", "slow"} and sum(rows.values()) >= 30
    policy = load_policy(output)
    assert policy.text_model is not None and policy.info["text_refit"]["rows"] == rows
    # Same representation, new coefficients.
    assert policy.text_model.hashing == served.text_model.hashing
    assert not (policy.text_model.coef == served.text_model.coef).all()
