"""The images built here with images/build.sh (debootstrap base, buildah, no registry) start and behave:
the router serves its probes as a non-root user, the operator image carries no torch, Ray or router
service, and neither has build tools or pip left in it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STORE = Path(os.environ.get("QR_CACHE", Path.home() / ".cache" / "quantum-router")) / "images"
BUILDAH = [
    "buildah",
    "--storage-driver",
    "vfs",
    "--root",
    str(STORE / "storage"),
    "--runroot",
    str(STORE / "run"),
]


@pytest.fixture(scope="module")
def images() -> dict[str, Path]:
    """name -> OCI archive, built (or found in the cache) by the project's script."""
    proc = subprocess.run(
        [str(ROOT / "images" / "build.sh"), "all"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("localhost/"))
    return {name: Path(archive) for name, archive in built.items()}


@pytest.fixture
def container(images: dict[str, Path]) -> Iterator[Callable[[str], str]]:
    """container(image) -> a working container of that image; removed afterwards."""
    made: list[str] = []

    def make(image: str) -> str:
        name = subprocess.run(
            [*BUILDAH, "from", "--quiet", image], capture_output=True, text=True, check=True, timeout=120
        ).stdout.strip()
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False, timeout=60)


def run_in(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    """A short command in a container; its output."""
    return subprocess.run(
        [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", name, "--", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_in(name: str, env: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    """A long-running command in a container, on the host's network (tests use loopback only)."""
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    return subprocess.Popen(
        [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", *flags, name, "--", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def test_images_are_built_and_archived(images: dict[str, Path]) -> None:
    assert {
        "localhost/quantum-router:0.1.0",
        "localhost/quantum-router-operator:0.1.0",
        "localhost/quantum-router-redis:0.1.0",
        "localhost/quantum-router-postgres:0.1.0",
    } <= set(images)
    for archive in images.values():
        assert archive.is_file() and archive.stat().st_size > 10_000_000


def test_router_image_serves_its_probes_as_a_non_root_user(container: Callable[[str], str]) -> None:
    name = container("localhost/quantum-router:0.1.0")
    assert run_in(name, "id", "-u").stdout.strip() == "10001"
    leftovers = run_in(name, "sh", "-c", "command -v gcc cc pip pip3; ls /build 2>/dev/null; true").stdout
    assert leftovers.strip() == ""
    port = free_port()
    # Outside a test the image serves on 0.0.0.0; here it shares the host's network, so loopback only.
    assert run_in(name, "sh", "-c", 'echo "$QR_HOST"').stdout.strip() == "0.0.0.0"
    # The image's own command (CMD quantum-router serve) on its embedded defaults: SQLite in the
    # writable working directory, in-process cache, simulated fleet.
    server = start_in(name, {"QR_PORT": str(port), "QR_HOST": "127.0.0.1"}, "quantum-router", "serve")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and get(f"http://127.0.0.1:{port}/livez")[0] != 200:
            time.sleep(0.5)
        assert get(f"http://127.0.0.1:{port}/livez") == (200, '{"status":"ok"}')
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and '"database":"ok"' in body
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_operator_image_has_only_the_operator(container: Callable[[str], str]) -> None:
    name = container("localhost/quantum-router-operator:0.1.0")
    assert "--namespace" in run_in(name, "router-operator", "--help").stdout
    assert run_in(name, "python3", "-c", "import kopf, kubernetes, router_operator").returncode == 0
    for heavy in ("torch", "ray", "quantum_router", "fastapi"):
        assert run_in(name, "/opt/venv/bin/python", "-c", f"import {heavy}").returncode != 0, heavy
    assert run_in(name, "id", "-u").stdout.strip() == "10001"


def test_postgres_image_runs_the_operators_primary_script_as_its_user(
    container: Callable[[str], str],
) -> None:
    name = container("localhost/quantum-router-postgres:0.1.0")
    script = (ROOT / "operator" / "router_operator" / "scripts" / "postgres-primary.sh").read_text()
    port = free_port()
    env = {
        "PGDATA": "/tmp/pgdata",
        "PGPORT": str(port),
        "LISTEN_ADDRESSES": "127.0.0.1",
        "SUPERUSER_PASSWORD": "su",
        "DATABASE_USER": "router",
        "DATABASE_NAME": "router",
        "DATABASE_PASSWORD": "db-pw",
        "REPLICATION_PASSWORD": "repl",
    }
    # As the pod does: uid 10001 (the image's user; initdb needs a passwd entry) runs the script with sh.
    server = start_in(name, env, "sh", "-c", script)
    try:
        url = f"postgresql://router:db-pw@127.0.0.1:{port}/router"
        deadline = time.monotonic() + 90
        answer = run_in(name, "psql", url, "-tAc", "SELECT current_user")
        while time.monotonic() < deadline and answer.stdout.strip() != "router":
            time.sleep(1)
            answer = run_in(name, "psql", url, "-tAc", "SELECT current_user")
        assert answer.stdout.strip() == "router", answer.stderr
        owner = run_in(name, "stat", "-c", "%u", "/tmp/pgdata/PG_VERSION").stdout.strip()
        assert owner == "10001"
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_redis_image_has_the_cluster_tools_the_scripts_use(container: Callable[[str], str]) -> None:
    name = container("localhost/quantum-router-redis:0.1.0")
    out = run_in(
        name, "sh", "-c", "id -u; redis-server --version; redis-cli --version; getent hosts localhost"
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "10001"
    assert "v=7." in lines[1] and lines[2].startswith("redis-cli 7.") and "127.0.0.1" in lines[3]
