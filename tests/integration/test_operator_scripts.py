"""The scripts the operator ships into Redis and PostgreSQL pods, run here against the real servers.

kwok nodes run no containers, so these tests are what proves the scripts themselves: the Redis
bootstrap creates a working cluster and is safe to run twice; the PostgreSQL primary initialises once
and a replica cloned by the replica script streams from it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "operator" / "router_operator" / "scripts"
PASSWORD = "bootstrap-test-password"


def redis_port() -> int:
    """A free port whose cluster-bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def apt_install(*packages: str) -> None:
    """Install Debian packages with the project's own helper (CI machines start without them)."""
    script = f'SCRIPT_NAME=tests; source "{ROOT}/scripts/lib/common.sh"; apt_install {" ".join(packages)}'
    subprocess.run(["bash", "-c", script], check=True, stdin=subprocess.DEVNULL, timeout=600)


def wait_for(what: str, check: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def redis_nodes() -> Iterator[list[int]]:
    """Six empty cluster-mode redis-server processes on loopback, with a password."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        apt_install("redis-server", "redis-tools")
    state = Path(tempfile.mkdtemp(prefix="qr-bootstrap-"))
    ports = [redis_port() for _ in range(6)]
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(p),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{p}.conf",
                "--dir",
                str(state),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
                "--masterauth",
                PASSWORD,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)


def bootstrap(ports: list[int]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDISCLI_AUTH": PASSWORD,
        "REDIS_REPLICAS": "1",
        "REDIS_NODES": " ".join(f"127.0.0.1:{p}" for p in ports),
    }
    return subprocess.run(
        ["sh", str(SCRIPTS / "redis-bootstrap.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_redis_bootstrap_creates_the_cluster_once(redis_nodes: list[int]) -> None:
    first = bootstrap(redis_nodes)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "cluster ready" in first.stdout
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", redis_nodes[0])], password=PASSWORD)
    try:
        for i in range(50):  # keys land on every shard
            client.set(f"k{i}", str(i))
        assert client.get("k42") == b"42"
        seed = redis.Redis(port=redis_nodes[0], password=PASSWORD)
        flags = [n["flags"] for n in seed.execute_command("CLUSTER NODES").values()]
        seed.close()
        assert sum("slave" in f for f in flags) == 3 and sum("master" in f for f in flags) == 3, flags
    finally:
        client.close()
    again = bootstrap(redis_nodes)
    assert again.returncode == 0, again.stderr
    assert "cluster already created" in again.stdout
    node = redis.Redis(port=redis_nodes[1], password=PASSWORD)
    assert b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
    node.close()


class Postgres:
    """One server started by a shipped script, as the postgres user when we are root."""

    def __init__(self, script: str, env: dict[str, str], data: Path) -> None:
        self.script, self.env, self.data = script, env, data
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["env", *(f"{k}={v}" for k, v in self.env.items()), "sh", str(SCRIPTS / self.script)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        log = (self.data.parent / f"{self.script}.log").open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.data.parent
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


def pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        apt_install("postgresql")
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent


def sql(bindir: Path, port: int, query: str) -> str:
    url = f"postgresql://router:db-pw@127.0.0.1:{port}/router"
    out = subprocess.run(
        [str(bindir / "psql"), url, "-tAc", query],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    # The answer of the last statement (psql prints a line per statement).
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 else f"ERROR {out.stderr.strip()}"


def ready(bindir: Path, port: int) -> bool:
    return (
        subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False, timeout=10
        ).returncode
        == 0
    )


def test_postgres_primary_initialises_once_and_the_replica_streams() -> None:
    bindir = pg_bindir()
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "postgres"], check=True)
    root = Path(tempfile.mkdtemp(prefix="qr-pg-scripts-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    p_port, r_port = free_port(), free_port()
    common = {"PATH": f"{bindir}:/usr/bin:/bin"}
    primary = Postgres(
        "postgres-primary.sh",
        {
            **common,
            "PGDATA": str(root / "primary"),
            "PGPORT": str(p_port),
            "LISTEN_ADDRESSES": "127.0.0.1",
            "SUPERUSER_PASSWORD": "su-pw",
            "DATABASE_USER": "router",
            "DATABASE_NAME": "router",
            "DATABASE_PASSWORD": "db-pw",
            "REPLICATION_PASSWORD": "repl-pw",
        },
        root / "primary",
    )
    replica = Postgres(
        "postgres-replica.sh",
        {
            **common,
            "PGDATA": str(root / "replica"),
            "PGPORT": str(r_port),
            "PRIMARY_HOST": "127.0.0.1",
            "PRIMARY_PORT": str(p_port),
            "REPLICATION_PASSWORD": "repl-pw",
        },
        root / "replica",
    )
    try:
        primary.start()
        wait_for("primary", lambda: ready(bindir, p_port), 120)
        assert sql(bindir, p_port, "CREATE TABLE t (x int); INSERT INTO t VALUES (7); SELECT 1") == "1"
        replica.start()
        wait_for("replica", lambda: ready(bindir, r_port), 120)
        wait_for("row on the replica", lambda: sql(bindir, r_port, "SELECT x FROM t") == "7", 60)
        assert sql(bindir, r_port, "SELECT pg_is_in_recovery()") == "t"
        assert "ERROR" in sql(bindir, r_port, "INSERT INTO t VALUES (8)")  # read-only standby
        # A restart must not initialise again: the data is still there.
        primary.stop()
        primary.start()
        wait_for("primary again", lambda: ready(bindir, p_port), 120)
        assert sql(bindir, p_port, "SELECT count(*) FROM t") == "1"
        assert sql(bindir, p_port, "INSERT INTO t VALUES (9); SELECT 1") == "1"
        wait_for(
            "replica follows the restarted primary",
            lambda: sql(bindir, r_port, "SELECT count(*) FROM t") == "2",
            60,
        )
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)
