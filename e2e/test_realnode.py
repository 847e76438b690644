"""The real node: real containers from the project's images, Services, DNS, logs, exec, metrics,
no route out of the cluster, and a `down` that leaves the host as it found it.

One control plane with a real node serves the whole module (`real_node`, session scope); the last
test stops it and compares the host with the snapshot taken before it started.
"""

from __future__ import annotations

import errno
import json
import subprocess
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

if TYPE_CHECKING:
    from conftest import RealNodeCluster

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

ROOT = Path(__file__).resolve().parent.parent
POD_CIDR_PREFIX = "10.245.0."
SERVICE_CIDR = "10.0.0.0/24"
DNS_IP = "10.0.0.10"


def router_image() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"localhost/quantum-router:{version}"


def router_pod(
    name: str, node: str, labels: dict[str, str], command: list[str] | None = None
) -> dict[str, Any]:
    """A pod from the router image, pinned to the real node, never pulling (no registry here)."""
    container: dict[str, Any] = {
        "name": "router",
        "image": router_image(),
        "imagePullPolicy": "Never",
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if command:
        container["command"] = command
    else:
        container["ports"] = [{"name": "http", "containerPort": 8000}]
        container["readinessProbe"] = {"httpGet": {"path": "/v1/health", "port": 8000}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never" if command else "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        },
    }


@pytest.fixture(scope="module")
def ns(real_node: RealNodeCluster) -> Iterator[str]:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    kube = real_node.cluster
    kube.core().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.poll(
        f"default ServiceAccount in {name}",
        lambda: any(
            sa.metadata.name == "default" for sa in kube.core().list_namespaced_service_account(name).items
        ),
        timeout_s=60,
    )
    yield name


@pytest.fixture(scope="module")
def router(real_node: RealNodeCluster, ns: str) -> client.V1Service:
    """A router pod on the real node, Ready, behind a ClusterIP Service `router`."""
    kube = real_node.cluster
    core = kube.core()
    core.create_namespaced_pod(ns, router_pod("router", real_node.node_name, {"app": "router"}))
    core.create_namespaced_service(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "router"},
            "spec": {
                "selector": {"app": "router"},
                "ports": [{"name": "http", "port": 8000, "targetPort": 8000}],
            },
        },
    )

    def ready() -> bool:
        pod = core.read_namespaced_pod("router", ns)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    kube.poll("router pod Ready on the real node", ready, timeout_s=120)
    service: client.V1Service = core.read_namespaced_service("router", ns)
    # kube-proxy programs the Service a moment after the endpoint turns ready (until then the
    # ClusterIP has no rule and the host reports EHOSTUNREACH): wait for it, bounded.
    kube.poll(
        "kube-proxy rules for the router Service", lambda: _health(service.spec.cluster_ip), timeout_s=30
    )
    return service


def _health(cluster_ip: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{cluster_ip}:8000/v1/health", timeout=5) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body if resp.status == 200 else None
    except OSError:
        return None


def test_node_runs_containerd_and_the_addons(real_node: RealNodeCluster) -> None:
    kube = real_node.cluster
    node = kube.core().read_node(real_node.node_name)
    info = node.status.node_info
    assert info.kubelet_version == kube.pinned()["KUBE_VERSION"]
    assert info.container_runtime_version == f"containerd://{kube.pinned()['CONTAINERD_VERSION'].lstrip('v')}"
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == f"{POD_CIDR_PREFIX}1"
    dns = kube.core().read_namespaced_service("kube-dns", "kube-system")
    assert dns.spec.cluster_ip == DNS_IP
    pods = kube.core().list_namespaced_pod("kube-system").items
    running = {p.metadata.labels.get("k8s-app"): p for p in pods if p.status.phase == "Running"}
    for app in ("kube-dns", "metrics-server"):
        assert running[app].spec.node_name == real_node.node_name
        assert running[app].status.pod_ip.startswith(POD_CIDR_PREFIX)
    # The API server is reachable by pods through the kubernetes Service: its endpoint is the node IP.
    slices = kube.kubectl(
        "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"
    )
    endpoints = [a for s in json.loads(slices)["items"] for e in s["endpoints"] for a in e["addresses"]]
    assert endpoints == [f"{POD_CIDR_PREFIX}1"]


def test_router_answers_through_its_cluster_ip_from_the_host(router: client.V1Service) -> None:
    url = f"http://{router.spec.cluster_ip}:8000/v1/health"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["status"] == "ok"
    # From the host, Services are reached from the node IP (the Service range's route says so).
    route = subprocess.run(
        ["ip", "-4", "route", "get", router.spec.cluster_ip], capture_output=True, text=True, check=True
    )
    assert f"dev qr-svc0 src {POD_CIDR_PREFIX}1" in route.stdout


def test_router_answers_through_its_dns_name_from_another_pod(
    real_node: RealNodeCluster, ns: str, router: client.V1Service
) -> None:
    kube = real_node.cluster
    core = kube.core()
    url = f"http://router.{ns}.svc.cluster.local:8000/v1/health"
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    core.create_namespaced_pod(
        ns, router_pod("client", real_node.node_name, {"app": "client"}, ["python3", "-c", script])
    )

    def finished() -> str | None:
        phase: str | None = core.read_namespaced_pod("client", ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = kube.poll("client pod finished", finished, timeout_s=120)
    # `kubectl logs` goes API server -> kubelet (x509 client certificate, webhook authorization).
    logs = kube.kubectl("logs", "-n", ns, "client")
    assert phase == "Succeeded", logs
    assert json.loads(logs)["status"] == "ok"


def test_logs_and_exec_reach_the_kubelet(
    real_node: RealNodeCluster, ns: str, router: client.V1Service
) -> None:
    """Both go API server -> kubelet on the node IP: x509 client certificate, webhook authorization."""
    kube = real_node.cluster
    assert "Application startup complete" in kube.kubectl("logs", "-n", ns, "router")
    out = kube.kubectl("exec", "-n", ns, "router", "--", "python3", "-c", "import os; print(os.getuid())")
    assert out.strip() == "10001"


def _routes(real_node: RealNodeCluster, ns: str) -> list[tuple[str, str, str]]:
    """(destination, gateway, mask) of the router pod's IPv4 routing table, read in the pod."""
    table = real_node.cluster.kubectl("exec", "-n", ns, "router", "--", "cat", "/proc/net/route")

    def ip(hex_le: str) -> str:
        return ".".join(str(b) for b in bytes.fromhex(hex_le)[::-1])

    rows = [line.split() for line in table.splitlines()[1:] if line.strip()]
    return [(ip(r[1]), ip(r[2]), ip(r[7])) for r in rows]


def test_pods_have_no_route_out_of_the_cluster(
    real_node: RealNodeCluster, ns: str, router: client.V1Service
) -> None:
    routes = _routes(real_node, ns)
    # Only the pod subnet (on-link) and the Service range (via the node): no default route.
    assert sorted(routes) == sorted(
        [
            ("10.0.0.0", f"{POD_CIDR_PREFIX}1", "255.255.255.0"),
            (f"{POD_CIDR_PREFIX}0", "0.0.0.0", "255.255.255.0"),
        ]
    ), routes
    assert all(dest != "0.0.0.0" for dest, _, _ in routes)
    # With no route the kernel refuses at once, nothing is sent (198.51.100.0/24 is TEST-NET-2).
    probe = (
        "import socket, sys\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect(('198.51.100.7', 80))\nexcept OSError as e:\n    print(e.errno); sys.exit(0)\n"
        "print('connected'); sys.exit(1)\n"
    )
    out = real_node.cluster.kubectl("exec", "-n", ns, "router", "--", "python3", "-c", probe)
    assert int(out.strip()) == errno.ENETUNREACH


def test_host_routes_every_cluster_range_locally(real_node: RealNodeCluster) -> None:
    def route(addr: str) -> str:
        proc = subprocess.run(["ip", "-4", "route", "get", addr], capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr

    for addr in (f"{POD_CIDR_PREFIX}2", f"{POD_CIDR_PREFIX}254"):
        assert " dev qr-cni0 " in route(addr) and " via " not in route(addr)
    for addr in ("10.0.0.1", DNS_IP, "10.0.0.254"):
        assert " dev qr-svc0 " in route(addr) and " via " not in route(addr)
    # kwok's fake pod IPs: an `unreachable` route, so the lookup itself fails and nothing is sent.
    for addr in ("10.244.0.1", "10.244.255.254"):
        assert "No route to host" in route(addr)
    shown = subprocess.run(
        ["ip", "-4", "route", "show", "10.244.0.0/16"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith("unreachable 10.244.0.0/16")


def test_metrics_server_reports_pod_cpu_and_memory(
    real_node: RealNodeCluster, ns: str, router: client.V1Service
) -> None:
    kube = real_node.cluster
    custom = client.CustomObjectsApi(kube.api)

    def usage() -> dict[str, str] | None:
        try:
            item = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods", "router")
        except client.ApiException:
            return None
        containers = item.get("containers") or []
        return containers[0]["usage"] if containers else None

    got = kube.poll("metrics.k8s.io usage of the router pod", usage, timeout_s=120, interval_s=2)
    assert got["memory"].endswith("Ki") and int(got["memory"][:-2]) > 10_000  # a Python app: > 10 MB
    assert "cpu" in got
    top = kube.kubectl("top", "pod", "-n", ns, "router", "--no-headers")
    assert top.split()[0] == "router"
    node_top = kube.kubectl("top", "node", real_node.node_name, "--no-headers")
    assert node_top.split()[0] == real_node.node_name


def test_down_leaves_the_host_as_it_found_it(real_node: RealNodeCluster) -> None:
    """Last in this module: stops the real node and compares the host with the snapshot from before."""
    real_node.cluster.down()
    after = real_node.snapshot()
    for key, before in real_node.before.items():
        assert after[key] == before, f"{key} differs after down"
    leftovers = list(real_node.cluster.state_dir.glob("node/*/"))
    assert not [p for p in leftovers if p.name in ("containerd", "kubelet", "cni-ipam", "pod-logs")], (
        leftovers
    )
