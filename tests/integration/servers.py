"""Real servers for integration tests, driven through the project's own start scripts.

Each stack lives in its own temporary state dir; every script call runs under a timeout, so a
broken server fails the test instead of hanging it. Set ``QR_KEEP_TEST_SERVERS=1`` to stop (not
delete) the stacks at session end and keep their logs for debugging.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import redis

from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SCRIPT = REPO_ROOT / "scripts" / "redis-cluster.sh"
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres-replicas.sh"

# First start may include apt-get install on a fresh machine.
START_TIMEOUT_SECONDS = 600.0
STEP_TIMEOUT_SECONDS = 120.0


class ServerError(RuntimeError):
    """A start/stop script failed or timed out."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file as written by the scripts (values may be single-quoted)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def new_state_dir(prefix: str, *, for_other_user: bool = False) -> Path:
    """A fresh directory in the temp dir (never under the repository).

    ``for_other_user``: as root, use /tmp itself, because PostgreSQL runs as the postgres user and
    cannot traverse a private $TMPDIR such as one under /root.
    """
    parent = "/tmp" if for_other_user and os.geteuid() == 0 else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


class ScriptStack:
    """Runs one of the ``scripts/*.sh`` stack scripts against a fixed state dir."""

    def __init__(self, script: Path, state_dir: Path) -> None:
        self.script = script
        self.state_dir = state_dir

    def run(self, *args: str, timeout: float = STEP_TIMEOUT_SECONDS) -> str:
        """Run ``script --dir STATE_DIR ARGS...``; return stdout, raise ServerError on failure."""
        command = [str(self.script), "--dir", str(self.state_dir), *args]
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"{' '.join(command)} timed out after {timeout} s") from exc
        if proc.returncode != 0:
            raise ServerError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return proc.stdout

    def env(self) -> dict[str, str]:
        """The stack's env file (written once the stack has been created)."""
        return read_env_file(self.state_dir / "env")

    def wait(self, timeout: float) -> None:
        """Block until the script's health check passes, at most ``timeout`` seconds."""
        self.run("wait", "--timeout", str(math.ceil(timeout)), timeout=timeout + 30)

    def start_all(self) -> None:
        """Create the stack, or start whichever of its nodes are down, and wait until healthy."""
        self.run("start", timeout=START_TIMEOUT_SECONDS)

    def stop_all(self) -> None:
        """Stop every node; data and ports are kept for :meth:`start_all`."""
        self.run("stop")

    def finish(self) -> None:
        """Session end: stop everything, and delete the state dir unless asked to keep it."""
        if os.environ.get("QR_KEEP_TEST_SERVERS") == "1":
            self.run("stop")
        else:
            self.run("destroy")
            shutil.rmtree(self.state_dir, ignore_errors=True)


class RedisClusterServers(ScriptStack):
    """Six-node Redis Cluster from ``scripts/redis-cluster.sh``; nodes are addressed by index."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(REDIS_SCRIPT, state_dir)

    @property
    def url(self) -> str:
        """Seed URL for cluster clients (one node; the client discovers the rest)."""
        return self.env()["QR_REDIS_URL"]

    @property
    def password(self) -> str:
        """The password every node requires (the script's ``secrets`` file)."""
        return read_env_file(self.state_dir / "secrets")["REDIS_PASSWORD"]

    @property
    def node_ports(self) -> list[int]:
        """Client ports of the six nodes, in index order."""
        return [int(node.rsplit(":", 1)[1]) for node in self.env()["QR_REDIS_NODES"].split(",")]

    def kill_node(self, index: int) -> None:
        """SIGKILL one node (a crash) and wait until it has exited."""
        self.run("kill-node", str(index))

    def start_node(self, index: int) -> None:
        """Start a node again with its old cluster identity; it rejoins (as a replica if replaced)."""
        self.run("start-node", str(index))

    def wait_healthy(self, timeout: float) -> None:
        """Wait until all six nodes run, all slots are served and every replica is linked."""
        self.wait(timeout)

    def pause_node(self, index: int) -> None:
        """SIGSTOP one node: it keeps its sockets open but never answers (a hung server)."""
        os.kill(self._pid(index), signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        """SIGCONT a node paused by :meth:`pause_node`."""
        os.kill(self._pid(index), signal.SIGCONT)

    def _pid(self, index: int) -> int:
        pid_file = self.state_dir / f"node-{self.node_ports[index]}" / "redis.pid"
        return int(pid_file.read_text().strip())

    def role(self, index: int) -> str | None:
        """``master`` or ``slave`` as the node reports it, or None when it does not answer."""
        client = redis.Redis(
            port=self.node_ports[index], password=self.password, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            return str(client.info("replication")["role"])
        except redis.RedisError:
            return None
        finally:
            client.close()

    def master_indexes(self) -> list[int]:
        """Indexes of the nodes that currently answer as masters."""
        return [i for i in range(len(self.node_ports)) if self.role(i) == "master"]


class PostgresStack(ScriptStack):
    """Primary plus two streaming replicas from ``scripts/postgres-replicas.sh``."""

    NODE_NAMES = ("primary", "replica1", "replica2")

    def __init__(self, state_dir: Path) -> None:
        super().__init__(POSTGRES_SCRIPT, state_dir)

    @property
    def primary_url(self) -> str:
        """SQLAlchemy asyncpg URL of the primary (database quantum_router)."""
        return self.env()["QR_DATABASE_URL"]

    @property
    def replica_urls(self) -> list[str]:
        """SQLAlchemy asyncpg URLs of replica1 and replica2, in that order."""
        urls: list[str] = json.loads(self.env()["QR_DATABASE_REPLICA_URLS"])
        return urls

    def stop_node(self, name: str) -> None:
        """``pg_ctl stop -m fast`` one of primary, replica1, replica2."""
        self.run("stop-node", name)

    def start_node(self, name: str) -> None:
        """Start one node and wait until it accepts connections."""
        self.run("start-node", name)

    def wait_replicating(self, timeout: float) -> None:
        """Wait until the primary takes writes and both replicas stream from it."""
        self.wait(timeout)

    def superuser_dsn(self, name: str) -> str:
        """A plain libpq DSN for the ``postgres`` superuser on one node (for pausing replay in tests)."""
        secrets = read_env_file(self.state_dir / "secrets")
        port = (self.state_dir / "ports").read_text().split()[self.NODE_NAMES.index(name)]
        return f"postgresql://postgres:{secrets['SU_PASSWORD']}@127.0.0.1:{port}/quantum_router"


class StandaloneRedis:
    """One plain (non-cluster) ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT``."""
        return f"redis://127.0.0.1:{self.port}"

    def start_all(self) -> None:
        """Start the server (redis-server comes from redis-cluster.sh's install) and wait for PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server not installed; the redis_cluster fixture installs it")
        self.port = free_port()
        log = (self.state_dir / "redis.log").open("ab")
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.state_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_ping(self.port, self._proc, timeout=20)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers (a hung server)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a server paused by :meth:`pause`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def finish(self) -> None:
        """Terminate the server, wait for exit (SIGKILL after 10 s) and delete the state dir."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _wait_for_ping(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"redis-server on {port} exited with {proc.returncode}")
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            time.sleep(0.1)
    finally:
        client.close()
    raise ServerError(f"redis-server on {port} did not answer PING within {timeout} s")


class _Stack(Protocol):
    def start_all(self) -> None: ...
    def finish(self) -> None: ...


_S = TypeVar("_S", bound=_Stack)


@contextlib.contextmanager
def running(stack: _S) -> Iterator[_S]:
    """Start ``stack``; always tear it down afterwards, even when the start itself failed."""
    try:
        stack.start_all()
        yield stack
    finally:
        stack.finish()
