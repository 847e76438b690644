"""The operator on the real API server: RouterDeployments become Ready stacks on kwok nodes, and every
promise of docs/operator.md holds (exact updates, scale, self-healing, GC, invalid specs, restarts, CEL)."""

from __future__ import annotations

import copy
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import Operator
from router_operator.builders import Context, plan
from router_operator.owner import Owner
from router_operator.status import is_ready
from router_operator.validation import validate

if TYPE_CHECKING:
    from conftest import KubeCluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "routerdeployment.yaml"
SAMPLES = ROOT / "crds" / "samples"
GROUP, VERSION, PLURAL = "quantumrouter.dev", "v1alpha1", "routerdeployments"
INSTANCE = "app.kubernetes.io/instance"
READY_TIMEOUT_S = 120
# Kinds the operator creates, with the API that lists them.
# Everything but the minimal-sample test keeps data in emptyDirs: each claim would use up one of the
# few pre-made volumes (kwok nodes have no provisioner), and released volumes are not reused.
LIGHT: dict[str, Any] = {
    "training": {"enabled": False},
    "cache": {"managed": {"ephemeral": True}},
    "database": {"managed": {"ephemeral": True}},
}
CHILD_KINDS = (
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
)


@pytest.fixture(scope="module")
def crd_installed(kube_cluster: KubeCluster) -> None:
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/routerdeployments.quantumrouter.dev", "--timeout=60s"
    )


@pytest.fixture(scope="module")
def volumes(kube_cluster: KubeCluster) -> Iterator[None]:
    """Pre-made volumes the PersistentVolume controller binds to the StatefulSets' claims (kwok
    nodes mount nothing, so no storage provisioner runs here)."""
    core = kube_cluster.core()
    names = [f"qr-e2e-pv-{i}" for i in range(12)]
    for name in names:
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "50Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/nonexistent/{name}"},
            },
        }
        core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    yield
    for name in names:
        core.delete_persistent_volume(name)


@pytest.fixture(scope="module")
def operator(
    kube_cluster: KubeCluster, crd_installed: None, volumes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(kube_cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    sys.stderr.write(op.log_tail())


def custom(cluster: KubeCluster) -> Any:
    return client.CustomObjectsApi(cluster.api)


def create_rd(cluster: KubeCluster, ns: str, name: str, spec: dict[str, Any] | None = None) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RouterDeployment",
        "metadata": {"name": name},
        "spec": spec or {},
    }
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def get_rd(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    return cast(
        dict[str, Any], custom(cluster).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    )


def patch_spec(cluster: KubeCluster, ns: str, name: str, spec: dict[str, Any]) -> None:
    custom(cluster).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": spec})


def condition(rd: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (rd.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return cast(dict[str, Any], c)
    return {}


def wait_condition(
    cluster: KubeCluster, ns: str, name: str, kind: str, field: str, value: str
) -> dict[str, Any]:
    """Poll until condition `kind` has `field` == `value`; returns the resource."""

    def check() -> dict[str, Any] | None:
        rd = get_rd(cluster, ns, name)
        return rd if condition(rd, kind).get(field) == value else None

    return cluster.poll(f"{ns}/{name} {kind}.{field}={value}", check, 60)


def wait_ready(
    cluster: KubeCluster, op: Operator, ns: str, name: str, timeout_s: float = READY_TIMEOUT_S
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        rd = get_rd(cluster, ns, name)
        return rd if is_ready(rd) else None

    try:
        return cluster.poll(f"{ns}/{name} Ready", ready, timeout_s)
    except AssertionError:
        sys.stderr.write(yaml.safe_dump(get_rd(cluster, ns, name).get("status")))
        sys.stderr.write(op.log_tail())
        raise


def children(cluster: KubeCluster, ns: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the kinds the operator makes, labelled with this instance: (kind, name) -> object."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in CHILD_KINDS:
        listed = yaml.safe_load(
            cluster.kubectl("get", kind, "-n", ns, "-l", f"{INSTANCE}={name}", "-o", "yaml")
        )
        for item in listed["items"]:
            out[(kind, item["metadata"]["name"])] = item
    return out


def versions(objs: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], str]:
    """What a spec change is judged by: the desired content (spec, or data), not resourceVersion, which
    controllers bump when they write status (the HPA every 15 s)."""
    return {k: json.dumps([o.get("spec"), o.get("data")], sort_keys=True) for k, o in objs.items()}


def changed_after(
    cluster: KubeCluster, op: Operator, ns: str, name: str, spec: dict[str, Any]
) -> set[tuple[str, str]]:
    before = versions(children(cluster, ns, name))
    patch_spec(cluster, ns, name, spec)
    wait_ready(cluster, op, ns, name)
    time.sleep(3)  # one more resync: anything else that would change has changed by now
    after = versions(children(cluster, ns, name))
    return {k for k in after if before.get(k) != after[k]}


def test_minimal_sample_becomes_a_ready_stack(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    kube_cluster.kubectl("apply", "-n", namespace, "-f", str(SAMPLES / "minimal.yaml"))
    wait_ready(kube_cluster, operator, namespace, "router")
    # Ready as soon as one router pod serves; the HPA then brings the Deployment to its minimum of 2.
    rd = kube_cluster.poll(
        "2 ready router pods",
        lambda: (r := get_rd(kube_cluster, namespace, "router"))["status"].get("readyReplicas") == 2 and r,
        READY_TIMEOUT_S,
    )
    status = rd["status"]
    assert status["phase"] == "Ready"
    assert status["endpoints"]["router"] == f"http://router.{namespace}.svc:8000"
    assert {c["type"] for c in status["conditions"]} == {
        "Ready",
        "SpecValid",
        "MigrationsSucceeded",
        "ServiceAvailable",
        "CacheReady",
        "DatabaseReady",
        "TrainingReady",
    }
    objs = children(kube_cluster, namespace, "router")
    kinds = {k for k, _ in objs}
    assert kinds == set(CHILD_KINDS)
    assert objs[("StatefulSet", "router-redis")]["status"]["readyReplicas"] == 6
    pods = (
        kube_cluster.core()
        .list_namespaced_pod(
            namespace, label_selector=f"{INSTANCE}=router,app.kubernetes.io/component=router"
        )
        .items
    )
    running = [p for p in pods if p.status.phase == "Running" and p.spec.node_name.startswith("kwok-node-")]
    assert len(running) == 2
    # Printer columns.
    table = kube_cluster.kubectl("get", "rd", "router", "-n", namespace)
    assert table.split("\n")[0].split()[:4] == ["NAME", "READY", "REPLICAS", "PHASE"]
    assert table.split("\n")[1].split()[1:4] == ["True", "2", "Ready"]
    events = kube_cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=RouterDeployment"
    )
    assert "MigrationsSucceeded=True" in events
    # The generated Secret never shows up in status or events.
    secret = kube_cluster.core().read_namespaced_secret("router-secrets", namespace)
    assert set(secret.data) >= {"jwt-secret", "admin-password", "database-password"}
    assert not [v for v in secret.data.values() if v in yaml.safe_dump(status) + events]


def test_spec_changes_touch_exactly_the_children_they_affect(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    create_rd(kube_cluster, namespace, "rd", LIGHT)
    wait_ready(kube_cluster, operator, namespace, "rd")
    # Let the HPA bring the Deployment to its minimum first: that scale is not the operator's change.
    apps = client.AppsV1Api(kube_cluster.api)
    kube_cluster.poll(
        "HPA minimum reached", lambda: apps.read_namespaced_deployment("rd", namespace).spec.replicas == 2, 60
    )
    assert changed_after(kube_cluster, operator, namespace, "rd", {"autoscaling": {"maxReplicas": 7}}) == {
        ("HorizontalPodAutoscaler", "rd")
    }
    assert changed_after(
        kube_cluster, operator, namespace, "rd", {"autoscaling": {"targetCpuUtilization": 55}}
    ) == {("HorizontalPodAutoscaler", "rd")}
    catalog = {
        "inline": {
            "models": [
                {
                    "name": "sim-x",
                    "provider": "simulated",
                    "cost_per_1k_tokens": 0.001,
                    "simulation": {"latency_ms": {"median": 100}},
                }
            ]
        }
    }
    changed = changed_after(kube_cluster, operator, namespace, "rd", {"catalog": catalog})
    assert changed == {("ConfigMap", "rd-config"), ("Deployment", "rd")}
    # The new pods mount the catalog.
    deployment = apps.read_namespaced_deployment("rd", namespace)
    assert deployment.spec.template.spec.volumes[-1].name == "catalog"


def test_kubectl_scale_moves_the_hpa_minimum_or_the_replicas(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    create_rd(kube_cluster, namespace, "auto", LIGHT)
    create_rd(kube_cluster, namespace, "fixed", {**LIGHT, "autoscaling": {"enabled": False}})
    for name in ("auto", "fixed"):
        wait_ready(kube_cluster, operator, namespace, name)
        kube_cluster.kubectl("scale", f"rd/{name}", "-n", namespace, "--replicas=4")
    auto = client.AutoscalingV2Api(kube_cluster.api)
    apps = client.AppsV1Api(kube_cluster.api)
    kube_cluster.poll(
        "HPA min 4",
        lambda: auto.read_namespaced_horizontal_pod_autoscaler("auto", namespace).spec.min_replicas == 4,
        60,
    )
    kube_cluster.poll(
        "4 replicas", lambda: apps.read_namespaced_deployment("fixed", namespace).spec.replicas == 4, 60
    )
    # The scale subresource reports the pods through status.replicas and the selector.
    scale = kube_cluster.poll(
        "scale status",
        lambda: (
            (
                s := custom(kube_cluster).get_namespaced_custom_object_scale(
                    GROUP, VERSION, namespace, PLURAL, "fixed"
                )
            )
            and s["status"].get("replicas") == 4
            and s
        ),
        90,
    )
    assert "app.kubernetes.io/component=router" in scale["status"]["selector"]


def test_children_deleted_or_edited_by_hand_are_restored(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    create_rd(kube_cluster, namespace, "heal", LIGHT)
    wait_ready(kube_cluster, operator, namespace, "heal")
    core, auto = kube_cluster.core(), client.AutoscalingV2Api(kube_cluster.api)
    uid = core.read_namespaced_service("heal", namespace).metadata.uid
    core.delete_namespaced_service("heal", namespace)
    core.delete_namespaced_config_map("heal-config", namespace)
    auto.patch_namespaced_horizontal_pod_autoscaler("heal", namespace, {"spec": {"maxReplicas": 99}})

    def restored() -> bool:
        try:
            svc = core.read_namespaced_service("heal", namespace)
            core.read_namespaced_config_map("heal-config", namespace)
        except ApiException:
            return False
        hpa = auto.read_namespaced_horizontal_pod_autoscaler("heal", namespace)
        return bool(svc.metadata.uid != uid and hpa.spec.max_replicas == 10)

    kube_cluster.poll("Service, ConfigMap and HPA restored", restored, 60)


def test_deleting_the_resource_garbage_collects_every_child(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    create_rd(kube_cluster, namespace, "gone", LIGHT)
    wait_ready(kube_cluster, operator, namespace, "gone")
    assert len(children(kube_cluster, namespace, "gone")) > 10
    # No finalizer: deletion does not even need the operator.
    assert not get_rd(kube_cluster, namespace, "gone")["metadata"].get("finalizers")
    kube_cluster.kubectl("delete", "rd", "gone", "-n", namespace, "--wait=true")
    kube_cluster.poll("children collected", lambda: not children(kube_cluster, namespace, "gone"), 120)


def test_invalid_spec_sets_a_condition_and_changes_nothing(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    create_rd(kube_cluster, namespace, "bad", {"settings": {"QR_JWT_SECRET": "in-plain-sight"}})
    rd = wait_condition(kube_cluster, namespace, "bad", "SpecValid", "status", "False")
    assert condition(rd, "SpecValid")["reason"] == "InvalidSpec"
    assert "spec.settings.QR_JWT_SECRET" in condition(rd, "SpecValid")["message"]
    assert rd["status"]["phase"] == "Failed"
    assert not children(kube_cluster, namespace, "bad")
    assert "in-plain-sight" not in operator.log_tail()

    # A working stack that is given a bad spec keeps running unchanged.
    create_rd(kube_cluster, namespace, "good", LIGHT)
    wait_ready(kube_cluster, operator, namespace, "good")
    before = versions(children(kube_cluster, namespace, "good"))
    patch_spec(kube_cluster, namespace, "good", {"catalog": {"configMapRef": {"name": "no-such-catalog"}}})
    rd = wait_condition(kube_cluster, namespace, "good", "SpecValid", "reason", "ReferenceNotFound")
    assert "ConfigMap no-such-catalog" in condition(rd, "SpecValid")["message"]
    time.sleep(3)
    assert versions(children(kube_cluster, namespace, "good")) == before


def test_pods_that_never_become_ready_show_in_conditions(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    spec = {**LIGHT, "placement": {"nodeSelector": {"no-such-label": "x"}}}
    create_rd(kube_cluster, namespace, "stuck", spec)

    def stuck() -> dict[str, Any] | None:
        rd = get_rd(kube_cluster, namespace, "stuck")
        return (
            rd
            if condition(rd, "CacheReady").get("reason") == "PodsNotReady"
            and condition(rd, "MigrationsSucceeded")
            else None
        )

    rd = kube_cluster.poll("PodsNotReady", stuck, 60)
    assert rd["status"]["phase"] == "Progressing"
    assert condition(rd, "Ready")["status"] == "False"
    assert "Traceback" not in operator.log_tail()


def test_new_image_waits_for_its_migration_job(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    spec: dict[str, Any] = copy.deepcopy(LIGHT)
    create_rd(kube_cluster, namespace, "mig", spec)
    rd = wait_ready(kube_cluster, operator, namespace, "mig")
    # Pre-create the new image's migration Job exactly as the operator would, but suspended, so it
    # cannot finish until the test lets it (kwok completes a running Job's pods at once).
    new = {**copy.deepcopy(spec), "image": "quantum-router:0.2.0"}
    ctx = Context(Owner("mig", namespace, rd["metadata"]["uid"]), validate("mig", new))
    job = plan(ctx).migration
    job["spec"]["suspend"] = True
    batch, apps = client.BatchV1Api(kube_cluster.api), client.AppsV1Api(kube_cluster.api)
    batch.create_namespaced_job(namespace, cast(client.V1Job, job))
    patch_spec(kube_cluster, namespace, "mig", {"image": "quantum-router:0.2.0"})

    def held() -> dict[str, Any] | None:
        r = get_rd(kube_cluster, namespace, "mig")
        return r if condition(r, "MigrationsSucceeded").get("reason") == "Running" else None

    kube_cluster.poll("migration Running", held, 60)
    time.sleep(4)
    image = apps.read_namespaced_deployment("mig", namespace).spec.template.spec.containers[0].image
    assert image == "quantum-router:0.1.0"
    batch.patch_namespaced_job(job["metadata"]["name"], namespace, {"spec": {"suspend": False}})
    wait_ready(kube_cluster, operator, namespace, "mig")
    kube_cluster.poll(
        "new image rolled out",
        lambda: (
            apps.read_namespaced_deployment("mig", namespace).spec.template.spec.containers[0].image
            == "quantum-router:0.2.0"
        ),
        60,
    )


def test_operator_restarted_mid_reconcile_converges_without_duplicates(
    kube_cluster: KubeCluster, operator: Operator, namespace: str
) -> None:
    names = [f"r{i}" for i in range(4)]
    operator.stop()
    operator.start()
    for name in names:
        create_rd(kube_cluster, namespace, name, LIGHT)
    time.sleep(1.5)  # some children exist, some not
    operator.stop(signal.SIGKILL)
    operator.start()
    for name in names:
        wait_ready(kube_cluster, operator, namespace, name)
    apps = client.AppsV1Api(kube_cluster.api)
    for name in names:
        objs = children(kube_cluster, namespace, name)
        assert sum(1 for k, _ in objs if k == "Secret") == 1
        assert sum(1 for k, _ in objs if k == "Deployment") == 1
        assert (
            len(apps.list_namespaced_replica_set(namespace, label_selector=f"{INSTANCE}={name}").items) == 1
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 20, "autoscaling": {"maxReplicas": 5}}, "must not exceed autoscaling.maxReplicas"),
        ({"autoscaling": {"minReplicas": 6, "maxReplicas": 5}}, "minReplicas must not exceed"),
        ({"routing": {"complexVariations": 5, "maxVariations": 3}}, "complexVariations must not exceed"),
        ({"routing": {"complexVariations": 6}}, "spec.routing.complexVariations"),
        ({"cache": {"managed": {"shards": 2}}}, "at least 3 shards"),
        (
            {"cache": {"managed": {}, "external": {"urlSecretRef": {"name": "a", "key": "b"}}}},
            "mutually exclusive",
        ),
        ({"cache": {"enabled": False, "managed": {}}}, "cache.enabled=false takes neither"),
        (
            {"database": {"managed": {}, "external": {"primaryUrlSecretRef": {"name": "a", "key": "b"}}}},
            "mutually exclusive",
        ),
        ({"training": {"rayAddress": "ray://x:10001", "ray": {}}}, "mutually exclusive"),
        ({"training": {"schedule": "every day"}}, "spec.training.schedule"),
        ({"replicas": 0}, "must be at least 1 while autoscaling"),
    ],
)
def test_cel_and_schema_reject_what_they_claim(
    kube_cluster: KubeCluster, crd_installed: None, namespace: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create_rd(kube_cluster, namespace, "rejected", spec)
    assert refused.value.status == 422
    assert message in str(refused.value.body)


def test_long_names_are_rejected(kube_cluster: KubeCluster, crd_installed: None, namespace: str) -> None:
    with pytest.raises(ApiException) as refused:
        create_rd(kube_cluster, namespace, "x" * 41)
    assert "at most 40 characters" in str(refused.value.body)
