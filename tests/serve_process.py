"""``quantum-router serve`` as a real child process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD, JWT_SECRET, TEST_CATALOG
from tests.ports import free_port


@contextmanager
def serve_process(
    tmp_path: Path, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`quantum-router serve *args` as a child process on SQLite and the test catalog, with ``env`` on top;
    yields it and a client once ``/readyz`` answers 200; stops it after (SIGTERM, then SIGKILL) if it runs."""
    port = free_port()
    environment = {
        **os.environ,
        "QR_PORT": str(port),
        "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
        "QR_CATALOG_FILE": str(TEST_CATALOG),
        "QR_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "QR_JWT_SECRET": JWT_SECRET,
        "QR_REQUEST_TIMEOUT_SECONDS": "60",
        # As make_settings: no exploration, which would now and then pick the test catalog's 100 s model.
        "QR_EPSILON": "0",
        "QR_RANDOM_SEED": "7",
        **env,
    }
    log = tmp_path / "serve.log"  # a file, not a pipe: nothing reads a pipe while the server runs
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantum_router.cli", "serve", *args],
            env=environment,
            stdout=output,
            stderr=output,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.1)
            yield process, client
    finally:
        if process.poll() is None:
            process.terminate()  # a graceful stop first: it is what stops the workers of `--workers`
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(30)
