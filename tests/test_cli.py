"""The console script, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from quantum_router.app import create_app
from tests.conftest import make_settings

CLI = [sys.executable, "-m", "quantum_router.cli"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_user_and_api_key_created_by_the_cli_can_call_the_api(tmp_path: Path) -> None:
    env = {
        "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
        "QR_NEW_USER_PASSWORD": "pw-123456",
    }
    created = _run(["user", "create", "carol", "--roles", "user"], env)
    assert created.returncode == 0, created.stderr
    assert "created user carol" in created.stdout
    assert _run(["user", "create", "carol"], env).returncode == 1
    key = _run(["apikey", "create", "carol", "--name", "laptop"], env)
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.strip()
    assert api_key.startswith("qr_")
    assert _run(["apikey", "create", "nobody"], env).returncode == 1

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
        assert client.post("/v1/execute", json=body, headers={"X-API-Key": api_key}).status_code == 200
        login = client.post("/v1/auth/login", json={"username": "carol", "password": "pw-123456"})
        assert login.status_code == 200


def test_help_lists_the_commands() -> None:
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60)
    for command in ("serve", "user", "apikey", "train", "eval", "migrate"):
        assert command in result.stdout
