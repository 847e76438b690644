"""The operator's whole stack with real pods on the real node: a RouterDeployment with a managed Redis
Cluster and PostgreSQL with one streaming replica becomes Ready, `POST /v1/execute` answers through the
router Service's ClusterIP, a repeat is a cache hit from the Redis Cluster, the experience row is read on
the replica, and neither a Redis master's nor a router pod's deletion loses a request.

It shares the session's real node (`real_node`) and runs the real `router-operator` against it. The
data stores keep their data on pre-made hostPath volumes (there is no storage provisioner on the node),
so a deleted Redis pod comes back with its nodes.conf and rejoins the cluster.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import pytest
from kubernetes import client

from conftest import Operator
from router_operator.status import is_ready

if TYPE_CHECKING:
    from conftest import KubeCluster, RealNodeCluster

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "routerdeployment.yaml"
GROUP, VERSION, PLURAL = "quantumrouter.dev", "v1alpha1", "routerdeployments"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
NAME = "qr"
POD_CIDR_PREFIX = "10.245.0."
# The images' user (images/Containerfile); hostPath volumes get no fsGroup, so their directories are its.
DATA_UID = 10001
READY_TIMEOUT_S = 420
PGDATA_SOCKET = "/var/lib/postgresql/data/pgdata"


def image(name: str) -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"localhost/{name}:{version}"


def stack_spec() -> dict[str, Any]:
    """Every pod on the real node, the locally built images, never pulled; no training (no Ray here)."""
    small = {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}
    return {
        "image": image("quantum-router"),
        "imagePullPolicy": "Never",
        "replicas": 2,
        # Memory requests far above use, so only CPU moves the HPA.
        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        # Scale down 10 s after the load is gone instead of Kubernetes' 300 s.
        "autoscaling": {
            "maxReplicas": 3,
            "targetCpuUtilization": 60,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
        },
        "training": {"enabled": False},
        "cache": {
            "managed": {
                "shards": 3,
                "replicasPerShard": 1,
                "image": image("quantum-router-redis"),
                "storage": "1Gi",
                "resources": small,
            }
        },
        "database": {
            "managed": {
                "provider": "StatefulSet",
                "replicas": 1,
                "image": image("quantum-router-postgres"),
                "storage": "1Gi",
                "resources": {**small, "requests": {"cpu": "20m", "memory": "64Mi"}},
            }
        },
        "placement": {"nodeSelector": {"type": "real"}},
    }


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def call(
    url: str, body: dict[str, Any] | None = None, token: str | None = None, timeout: float = 30
) -> Answer:
    """One HTTP request; a refused or reset connection is status 0 (a lost request)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, error=exc.read().decode(errors="replace")[:300])
    except OSError as exc:
        return Answer(0, error=repr(exc))


@dataclass
class Stack:
    kube: KubeCluster
    ns: str
    base: str
    token: str
    operator: Operator
    measured: dict[str, float]

    def execute(self, prompt: str, timeout: float = 30) -> Answer:
        body = {"prompt": prompt, "persona": "developer", "task_type": "code_generation"}
        return call(f"{self.base}/v1/execute", body, self.token, timeout)

    def pods(self, component: str) -> list[client.V1Pod]:
        selector = f"{INSTANCE}={NAME},{COMPONENT}={component}"
        pods: list[client.V1Pod] = (
            self.kube.core().list_namespaced_pod(self.ns, label_selector=selector).items
        )
        return sorted(pods, key=lambda p: p.metadata.name)

    def exec(self, pod: str, script: str, timeout_s: float = 60) -> str:
        return self.kube.kubectl("exec", "-n", self.ns, pod, "--", "sh", "-c", script, timeout_s=timeout_s)

    def redis(self, pod: str, args: str) -> str:
        out = self.exec(pod, f'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli {args}')
        return out.replace("\r", "")

    def psql(self, pod: str, sql: str) -> str:
        return self.exec(pod, f"psql -h {PGDATA_SOCKET} -U postgres -d router -tAc {json.dumps(sql)}").strip()


def rd(kube: KubeCluster, ns: str) -> dict[str, Any]:
    api = client.CustomObjectsApi(kube.api)
    return cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, NAME))


@pytest.fixture(scope="module")
def host_volumes(real_node: RealNodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """hostPath PersistentVolumes on the real node for the StatefulSets' claims (6 Redis, 2 PostgreSQL),
    owned by the images' user since hostPath volumes get no fsGroup."""
    core = real_node.cluster.core()
    base = tmp_path_factory.mktemp("volumes")
    base.chmod(0o755)
    names = [f"qr-rn-pv-{i}" for i in range(10)]
    for name in names:
        path = base / name
        path.mkdir()
        os.chown(path, DATA_UID, DATA_UID)
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(path), "type": "Directory"},
            },
        }
        core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    yield
    for name in names:
        core.delete_persistent_volume(name)


@pytest.fixture(scope="module")
def stack(
    real_node: RealNodeCluster, host_volumes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kube = real_node.cluster
    ns = f"stack-{uuid.uuid4().hex[:8]}"
    core = kube.core()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/routerdeployments.quantumrouter.dev", "--timeout=60s"
    )
    operator = Operator(kube, tmp_path_factory.mktemp("operator") / "operator.log")
    operator.start()
    try:
        yield start_stack(kube, ns, operator)
    finally:
        operator.stop()
        sys.stderr.write(operator.log_tail())


def start_stack(kube: KubeCluster, ns: str, operator: Operator) -> Stack:
    """Apply the RouterDeployment, wait (bounded) for Ready and for the ClusterIP, log in."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RouterDeployment", "metadata": {"name": NAME}}
    started = time.monotonic()
    client.CustomObjectsApi(kube.api).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, {**body, "spec": stack_spec()}
    )
    try:
        kube.poll("RouterDeployment Ready", lambda: is_ready(rd(kube, ns)), READY_TIMEOUT_S, interval_s=1)
    except AssertionError:
        sys.stderr.write(json.dumps(rd(kube, ns).get("status"), indent=1))
        sys.stderr.write(kube.kubectl("get", "pods,jobs,pvc", "-n", ns, "-o", "wide"))
        raise
    measured = {"apply_to_ready_s": time.monotonic() - started}
    apps = client.AppsV1Api(kube.api)
    kube.poll(
        "2 ready router pods",
        lambda: (apps.read_namespaced_deployment(NAME, ns).status.ready_replicas or 0) >= 2,
        READY_TIMEOUT_S,
        interval_s=1,
    )
    measured["apply_to_two_routers_ready_s"] = time.monotonic() - started
    sys.stderr.write(f"measured: {measured}\n")
    service = kube.core().read_namespaced_service(NAME, ns)
    base = f"http://{service.spec.cluster_ip}:8000"
    # kube-proxy programs the ClusterIP a moment after the endpoints turn ready.
    kube.poll("router ClusterIP answers", lambda: call(f"{base}/readyz", timeout=5).status == 200, 60)
    secret = kube.core().read_namespaced_secret(f"{NAME}-secrets", ns)
    password = base64.b64decode(secret.data["admin-password"]).decode()
    login = call(f"{base}/v1/auth/login", {"username": "admin", "password": password})
    assert login.status == 200, login
    return Stack(kube, ns, base, login.body["access_token"], operator, measured)


def masters(stack: Stack) -> list[str]:
    """Redis pods whose server is a master right now."""
    return [
        p.metadata.name
        for p in stack.pods("redis")
        if stack.redis(p.metadata.name, "role").splitlines()[:1] == ["master"]
    ]


def cluster_healthy(stack: Stack) -> bool:
    """Every slot served, six nodes known, three masters each with a replica, every pod Ready."""
    pods = stack.pods("redis")
    if len(pods) != 6 or not all(ready(p) for p in pods):
        return False
    info = stack.redis(pods[0].metadata.name, "cluster info")
    nodes = stack.redis(pods[0].metadata.name, "cluster nodes").splitlines()
    live = [n for n in nodes if "fail" not in n.split()[2] and "noaddr" not in n.split()[2]]
    return (
        "cluster_state:ok" in info
        and len(live) == 6
        and sum("master" in n.split()[2] for n in live) == 3
        and sum("slave" in n.split()[2] for n in live) == 3
    )


def ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


class Workers:
    """`workers` daemon threads running `_run(worker)` from the start of a `with` block until its end."""

    join_seconds = 60.0

    def __init__(self, workers: int) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)]

    def _run(self, worker: int) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.join_seconds)


class Load(Workers):
    """`workers` threads sending executes back to back until stopped; every answer is kept."""

    def __init__(self, stack: Stack, workers: int, prompt: Callable[[int], str]) -> None:
        super().__init__(workers)
        self.stack, self.prompt = stack, prompt
        self.answers: list[tuple[float, Answer]] = []
        self._lock = threading.Lock()

    def _run(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            answer = self.stack.execute(self.prompt(worker * 1_000_000 + i))
            with self._lock:
                self.answers.append((time.monotonic(), answer))
            i += 1

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def failures(self) -> list[Answer]:
        return [a for _, a in self.answers if a.status != 200]


def test_the_stack_becomes_ready_with_real_pods(stack: Stack) -> None:
    pods = stack.kube.core().list_namespaced_pod(stack.ns, label_selector=f"{INSTANCE}={NAME}").items
    by_component: dict[str, list[client.V1Pod]] = {}
    for pod in pods:
        by_component.setdefault(pod.metadata.labels[COMPONENT], []).append(pod)
        assert pod.spec.node_name == "qr-real-node", pod.metadata.name
        assert pod.status.pod_ip.startswith(POD_CIDR_PREFIX), pod.metadata.name
    assert len(by_component["redis"]) == 6 and all(ready(p) for p in by_component["redis"])
    assert [ready(p) for p in by_component["database-primary"]] == [True]
    assert [ready(p) for p in by_component["database-replica"]] == [True]
    assert sum(ready(p) for p in by_component["router"]) >= 2
    # The Jobs ran to completion in real containers.
    assert all(p.status.phase == "Succeeded" for p in by_component["migration"])
    assert any(p.status.phase == "Succeeded" for p in by_component["redis-bootstrap"])
    # A Redis Cluster: every slot served, three masters with one replica each.
    assert cluster_healthy(stack)
    # PostgreSQL streams to the replica, which is a hot standby.
    primary, replica = f"{NAME}-db-0", f"{NAME}-db-replica-0"
    assert stack.psql(primary, "SELECT state FROM pg_stat_replication") == "streaming"
    assert stack.psql(replica, "SELECT pg_is_in_recovery()") == "t"
    assert rd(stack.kube, stack.ns)["status"]["phase"] == "Ready"


def test_execute_answers_a_repeat_hits_redis_and_the_row_is_on_the_replica(stack: Stack) -> None:
    prompt = f"Write a Python function that reverses a list ({uuid.uuid4().hex})"
    first = stack.execute(prompt)
    assert first.status == 200, first
    assert first.body["cache"] == "miss"
    second = stack.execute(prompt)
    assert second.status == 200, second
    assert second.body["cache"] == "hit"
    assert second.body["answer"] == first.body["answer"]
    # The entry is in the Redis Cluster (redis-cli asks every node for the router's keys).
    redis_pod = stack.pods("redis")[0].metadata.name
    keys = stack.redis(redis_pod, "--cluster call 127.0.0.1:6379 KEYS 'qr:v1:resp:*'")
    assert "qr:v1:resp:" in keys, keys
    # Both experiences (the miss and the hit) are readable on the streaming replica.
    ids = (first.body["experience_id"], second.body["experience_id"])
    sql = f"SELECT cache_hit FROM experiences WHERE id IN ('{ids[0]}', '{ids[1]}') ORDER BY cache_hit"
    rows = stack.kube.poll(
        "experiences on the replica", lambda: stack.psql(f"{NAME}-db-replica-0", sql) == "f\nt", 30
    )
    assert rows


def test_deleting_a_redis_master_loses_no_request(stack: Stack) -> None:
    victim = masters(stack)[0]
    old_uid = stack.kube.core().read_namespaced_pod(victim, stack.ns).metadata.uid
    run = uuid.uuid4().hex[:8]
    with Load(stack, 1, lambda i: f"redis failover {run} {i}") as load:
        stack.kube.poll("requests before the deletion", lambda: load.count() >= 10, 60, 0.2)
        stack.kube.core().delete_namespaced_pod(victim, stack.ns)

        def back() -> bool:
            pod = stack.kube.core().read_namespaced_pod(victim, stack.ns)
            return bool(pod.metadata.uid != old_uid and cluster_healthy(stack))

        stack.kube.poll("Redis pod back and the cluster healthy", back, 180, interval_s=2)
        settled = load.count()
        stack.kube.poll("requests after recovery", lambda: load.count() >= settled + 10, 60, 0.2)
    assert load.count() >= 20
    assert not load.failures(), load.failures()[:5]
    # Whether the replica took over depends on how fast the pod came back (cluster-node-timeout 5 s):
    # either way the cluster is whole again and no request was lost.
    role = "master" if victim in masters(stack) else "replica"
    sys.stderr.write(f"redis master {victim} deleted: {load.count()} requests, all 200; back as {role}\n")


def test_evicting_a_router_pod_under_load_loses_no_request(stack: Stack) -> None:
    apps = client.AppsV1Api(stack.kube.api)
    core = stack.kube.core()
    before = [p.metadata.name for p in stack.pods("router") if ready(p)]
    assert len(before) >= 2
    run = uuid.uuid4().hex[:8]
    with Load(stack, 4, lambda i: f"router eviction {run} {i}") as load:
        stack.kube.poll("requests before the eviction", lambda: load.count() >= 20, 60, 0.2)
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": before[0]}}
        core.create_namespaced_pod_eviction(before[0], stack.ns, eviction)
        # The PodDisruptionBudget (maxUnavailable 1) refuses a second disruption meanwhile.
        second = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": before[1]}}
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod_eviction(before[1], stack.ns, second)
        assert refused.value.status == 429

        def replaced() -> bool:
            names = {p.metadata.name for p in stack.pods("router") if ready(p)}
            deployment = apps.read_namespaced_deployment(NAME, stack.ns)
            return before[0] not in names and len(names) >= 2 and deployment.status.replicas == len(names)

        stack.kube.poll("evicted router pod replaced", replaced, 180, interval_s=1)
        settled = load.count()
        stack.kube.poll("requests after the replacement", lambda: load.count() >= settled + 20, 60, 0.2)
    assert not load.failures(), load.failures()[:5]


class Busy(Workers):
    """`workers` threads asking the router Service's /readyz (each a database and a Redis round trip)
    back to back over kept-alive connections, to raise the router pods' CPU."""

    join_seconds = 30.0

    def __init__(self, host: str, workers: int) -> None:
        super().__init__(workers)
        self.host, self.sent = host, 0

    def _run(self, worker: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection(self.host, 8000, timeout=10)
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                self.sent += 1
            except (OSError, http.client.HTTPException):
                conn = None
                time.sleep(0.1)


def test_hpa_scales_the_routers_up_under_cpu_load_and_down_after(stack: Stack) -> None:
    auto = client.AutoscalingV2Api(stack.kube.api)
    apps = client.AppsV1Api(stack.kube.api)

    def replicas() -> int:
        return int(apps.read_namespaced_deployment(NAME, stack.ns).spec.replicas)

    def cpu() -> int | None:
        hpa = auto.read_namespaced_horizontal_pod_autoscaler(NAME, stack.ns)
        for metric in hpa.status.current_metrics or []:
            if metric.resource is not None and metric.resource.name == "cpu":
                return int(metric.resource.current.average_utilization)
        return None

    stack.kube.poll(
        "the HPA at its minimum with a CPU reading", lambda: replicas() == 2 and cpu() is not None, 120, 2
    )
    idle = cpu()
    started = time.monotonic()
    with Busy(stack.base.removeprefix("http://").rsplit(":", 1)[0], workers=6) as busy:
        stack.kube.poll("HPA scaled the routers up", lambda: replicas() == 3, 180, 2)
        up_s, loaded = time.monotonic() - started, cpu()
        stack.kube.poll(
            "third router pod ready",
            lambda: (apps.read_namespaced_deployment(NAME, stack.ns).status.ready_replicas or 0) == 3,
            120,
            1,
        )
    stopped = time.monotonic()
    stack.kube.poll("HPA scaled the routers back down", lambda: replicas() == 2, 240, 2)
    down_s = time.monotonic() - stopped
    sys.stderr.write(
        f"hpa: cpu {idle}% idle, {loaded}% loaded ({busy.sent} /readyz); "
        f"scaled up after {up_s:.0f} s of load, down {down_s:.0f} s after it stopped\n"
    )
    assert loaded is not None and loaded > 60
