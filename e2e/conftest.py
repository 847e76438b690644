"""Fixtures for end-to-end tests against a real local Kubernetes control plane.

`kube_cluster` builds (first run only, cached outside the repository) and starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok through
e2e/controlplane/cluster.sh, in a state directory of its own, and stops it at session end.
`real_node` does the same with `--real-node` (a node that runs containers; root only), and
records the host's state first so a test can check that `down` leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

pytestmark = pytest.mark.e2e

CONTROLPLANE_DIR = Path(__file__).resolve().parent / "controlplane"
CLUSTER_SH = CONTROLPLANE_DIR / "cluster.sh"
# The first build compiles Kubernetes from source on 2 shared cores: generous but bounded.
BUILD_TIMEOUT_S = 60 * 60
UP_TIMEOUT_S = 10 * 60
DOWN_TIMEOUT_S = 3 * 60

T = TypeVar("T")


def pinned_versions() -> dict[str, str]:
    """KEY=VALUE pairs of e2e/controlplane/versions.env (the single source of the pins)."""
    pins: dict[str, str] = {}
    for line in (CONTROLPLANE_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pins[key] = value
    return pins


def poll(what: str, check: Callable[[], T | None], timeout_s: float, interval_s: float = 0.5) -> T:
    """Call `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def _parse_exports(stdout: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            exports[key] = value
    return exports


@dataclass
class KubeCluster:
    """A running control plane: paths, the reported server version, and an API client."""

    state_dir: Path
    real_node: bool = False
    kubeconfig: Path = field(init=False)
    bin_dir: Path = field(init=False)
    server_version: str = field(init=False, default="")
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.kubeconfig = self.state_dir / "admin.kubeconfig"

    def script(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Run cluster.sh COMMAND for this state dir; output is echoed for the test log."""
        env = {**os.environ, "QR_CLUSTER_DIR": str(self.state_dir)}
        flags = ["--real-node"] if self.real_node and command in ("build", "up") else []
        proc = subprocess.run(
            [str(CLUSTER_SH), command, *flags],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        sys.stderr.write(proc.stderr)
        sys.stderr.write(proc.stdout)
        if proc.returncode != 0:
            raise RuntimeError(f"cluster.sh {command} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def up(self) -> str:
        """Start (building first if needed) and connect; returns cluster.sh's stdout."""
        # `build` separately so the long first compile gets its own, larger, timeout.
        self.script("build", BUILD_TIMEOUT_S)
        out = self.script("up", UP_TIMEOUT_S).stdout
        exports = _parse_exports(out)
        self.kubeconfig = Path(exports["KUBECONFIG"])
        self.bin_dir = Path(exports["PATH"].split(":", 1)[0])
        self.connect()
        return out

    def down(self) -> None:
        self.script("down", DOWN_TIMEOUT_S)

    def connect(self) -> None:
        """(Re)create the API client from the kubeconfig (ports may change across restarts)."""
        self.api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        self.server_version = client.VersionApi(self.api).get_code().git_version

    def kubectl(self, *args: str, timeout_s: float = 60) -> str:
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return proc.stdout

    def pids(self) -> dict[str, int]:
        """Component name -> pid, from the pid files of the running control plane."""
        return {p.stem: int(p.read_text()) for p in (self.state_dir / "run").glob("*.pid")}

    def ports(self) -> dict[str, int]:
        """PORT_<COMPONENT> -> loopback port chosen at the last start."""
        pairs = (line.split("=", 1) for line in (self.state_dir / "ports.env").read_text().split())
        return {key: int(value) for key, value in pairs}

    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    # Shared helpers for the tests, reached through the fixture (e2e is not a package).
    pinned = staticmethod(pinned_versions)
    poll = staticmethod(poll)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    cluster = KubeCluster(state_dir=tmp_path_factory.mktemp("kube-cluster"))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], KubeCluster]]:
    """Starts extra clusters in state dirs of their own; whatever is still up is stopped after."""
    started: list[KubeCluster] = []

    def start() -> KubeCluster:
        cluster = KubeCluster(state_dir=tmp_path_factory.mktemp("kube-cluster-extra"))
        started.append(cluster)
        cluster.up()
        return cluster

    yield start
    for cluster in started:
        cluster.down()


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (its contents go with it)."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    core = kube_cluster.core()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are only admitted once the namespace's default ServiceAccount exists.
    poll(
        f"default ServiceAccount in {name}",
        lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
        timeout_s=60,
    )
    try:
        yield name
    finally:
        # The restart test may have reconnected on a new port: use the current client.
        kube_cluster.core().delete_namespace(name)


# What a real node may change on the host (e2e/controlplane/lib/node-net.sh); `down` must restore all.
HOST_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
)
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/nri",
    "/var/lib/cni",
    "/opt/cni",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
)
NODE_PROCESS_NAMES = frozenset(
    {"kubelet", "containerd", "containerd-shim", "containerd-shim-runc-v2", "kube-proxy", "coredns", "pause"}
    | {"metrics-server"}
)


def _run_text(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30).stdout


def _iptables_rules(save: str) -> list[str]:
    """iptables-save output without comments and packet counters: the rules and chains only."""
    lines = []
    for line in _run_text(save).splitlines():
        if line.startswith("#"):
            continue
        lines.append(line.split(" [", 1)[0] if line.startswith(":") else line)
    return lines


def _node_processes() -> list[str]:
    """Processes that belong to a real node: by name, or living in a kubepods cgroup."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if comm in NODE_PROCESS_NAMES or "/kubepods" in cgroups:
            found.append(f"{proc.name} {comm}")
    return found


def host_snapshot() -> dict[str, Any]:
    """The host state a real node touches: interfaces, routes, iptables and nftables, sysctls,
    mount points, host paths, kubepods cgroups and node processes."""
    sysctls = {}
    for name in HOST_SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        sysctls[name] = path.read_text().strip() if path.exists() else None
    return {
        "interfaces": sorted(p.name for p in Path("/sys/class/net").iterdir()),
        "routes": sorted(_run_text("ip", "-4", "route", "show", "table", "all").splitlines()),
        "iptables": _iptables_rules("iptables-save"),
        "ip6tables": _iptables_rules("ip6tables-save"),
        "nft tables": sorted(_run_text("nft", "list", "tables").splitlines()),
        "sysctls": sysctls,
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
        "host paths": sorted(p for p in HOST_PATHS if Path(p).exists()),
        "kubepods cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")),
        "node processes": _node_processes(),
    }


@dataclass
class RealNodeCluster:
    """A control plane with a real node, and the host's state from before it started."""

    cluster: KubeCluster
    before: dict[str, Any]
    node_name: str = "qr-real-node"

    # Reached through the fixture (e2e is not a package).
    snapshot = staticmethod(host_snapshot)


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeCluster]:
    """ONE control plane with a real node per session (its own state dir), stopped at the end."""
    if os.geteuid() != 0:
        pytest.fail(
            "the real-node tests need root (they create bridges, iptables rules, mounts and cgroups); "
            "run them as root, or deselect them with -m 'not realnode'",
            pytrace=False,
        )
    before = host_snapshot()
    cluster = KubeCluster(state_dir=tmp_path_factory.mktemp("real-node"), real_node=True)
    try:
        cluster.up()
        yield RealNodeCluster(cluster=cluster, before=before)
    finally:
        cluster.down()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """The real `router-operator` console script as a child process."""

    def __init__(self, cluster: KubeCluster, log_path: Path) -> None:
        self.cluster, self.log_path = cluster, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "QR_OPERATOR_RESYNC_SECONDS": "2",
            "QR_OPERATOR_FACTS_TTL_SECONDS": "5",
            "QR_OPERATOR_LIVENESS_PORT": str(free_port()),
        }
        script = Path(sys.executable).parent / "router-operator"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(script)], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that stops the session's real node and checks the host runs after every other test
    that uses that node, whichever module they are in."""
    last = [i for i in items if i.name == "test_down_leaves_the_host_as_it_found_it"]
    items[:] = [i for i in items if i not in last] + last
