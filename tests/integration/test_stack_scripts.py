"""The local stack scripts: they delete only what they created, keep their secrets private, run Redis
with a password, and leave no node running when the cluster cannot be created."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.integration.servers import POSTGRES_SCRIPT, REDIS_SCRIPT, PostgresStack, RedisClusterServers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _run(
    script: Path, state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), "--dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("script", [REDIS_SCRIPT, POSTGRES_SCRIPT], ids=["redis", "postgres"])
def test_destroy_and_start_refuse_a_directory_the_script_did_not_create(script: Path, tmp_path: Path) -> None:
    precious = tmp_path / "not-a-stack"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    for command in ("destroy", "start", "stop"):
        result = _run(script, precious, command)
        assert result.returncode != 0, command
        assert "refusing to touch it" in result.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_state_dirs_are_private_and_env_files_owner_only(
    redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    for state in (redis_cluster.state_dir, postgres_stack.state_dir):
        assert _mode(state) == 0o700, state
        assert _mode(state / "env") == 0o600, state
        assert _mode(state / "secrets") == 0o600, state


def test_redis_nodes_require_the_password_the_env_file_carries(redis_cluster: RedisClusterServers) -> None:
    port = redis_cluster.node_ports[0]
    anonymous = redis.Redis(port=port, socket_timeout=2)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()
    assert redis_cluster.password in redis_cluster.url
    cluster = RedisCluster.from_url(redis_cluster.url)
    try:
        cluster.set("qr:test:scripts:auth", b"1")
        assert cluster.get("qr:test:scripts:auth") == b"1"
    finally:
        cluster.close()


def test_a_failed_cluster_create_stops_the_nodes_it_started(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    # A redis-cli that fails `--cluster create` and passes everything else to the real one.
    real = shutil.which("redis-cli")
    assert real is not None
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "redis-cli").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --cluster "*) echo "shim: no cluster today" >&2; exit 1;; esac\n'
        f'exec {real} "$@"\n'
    )
    (shim / "redis-cli").chmod(0o755)
    state = tmp_path / "failed-cluster"
    try:
        result = _run(REDIS_SCRIPT, state, "start", env={"PATH": f"{shim}:{os.environ['PATH']}"})
        assert result.returncode != 0
        ports = [int(d.name.removeprefix("node-")) for d in state.glob("node-*")]
        assert len(ports) == 6
        for port in ports:
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"node {port} still runs"
        assert "its nodes are stopped" in result.stderr
    finally:
        assert _run(REDIS_SCRIPT, state, "destroy").returncode == 0  # stops whatever a failure left
    assert not state.exists()
