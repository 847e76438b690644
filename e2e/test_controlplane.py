"""The local control plane behaves like a real cluster: version, workloads, GC, HPA, CRDs, restarts."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from conftest import KubeCluster

pytestmark = pytest.mark.e2e


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    # The image is never pulled: kwok plays the kubelet and only moves the pod through its phases.
    container = client.V1Container(name="app", image="registry.invalid/quantum-router/fake:1")
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def running_pods_on_kwok(cluster: KubeCluster, ns: str, app: str) -> list[Any]:
    pods = cluster.core().list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.status.phase == "Running"
        and (p.spec.node_name or "").startswith("kwok-node-")
        and p.metadata.deletion_timestamp is None
    ]


def process_alive(pid: int) -> bool:
    """True while /proc shows the pid as anything but a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_kubectl_reports_pinned_server_version(kube_cluster: KubeCluster) -> None:
    pinned = kube_cluster.pinned()["KUBE_VERSION"]
    versions = json.loads(kube_cluster.kubectl("version", "-o", "json"))
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert versions["clientVersion"]["gitVersion"] == pinned
    assert kube_cluster.server_version == pinned


def test_deployment_reaches_three_running_pods_on_kwok_nodes(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_cluster.api)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=3))

    pods = kube_cluster.poll(
        "3 Running pods", lambda: len(running_pods_on_kwok(kube_cluster, namespace, "web")) == 3, 120
    )
    assert pods

    def available() -> client.V1DeploymentStatus | None:
        status = apps.read_namespaced_deployment("web", namespace).status
        return status if status is not None and status.available_replicas == 3 else None

    assert kube_cluster.poll("deployment availableReplicas=3", available, 60).ready_replicas == 3


def test_deleting_deployment_garbage_collects_replicaset_and_pods(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_cluster.api)
    core = kube_cluster.core()
    apps.create_namespaced_deployment(namespace, deployment("gc", replicas=2))
    kube_cluster.poll(
        "2 Running pods", lambda: len(running_pods_on_kwok(kube_cluster, namespace, "gc")) == 2, 120
    )
    rs = apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items
    assert len(rs) == 1
    assert rs[0].metadata is not None
    assert [o.kind for o in rs[0].metadata.owner_references or []] == ["Deployment"]

    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")

    kube_cluster.poll("ReplicaSet gone", lambda: not apps.list_namespaced_replica_set(namespace).items, 120)
    kube_cluster.poll("pods gone", lambda: not core.list_namespaced_pod(namespace).items, 120)


def test_autoscaling_v2_hpa_is_accepted_and_reconciled(kube_cluster: KubeCluster, namespace: str) -> None:
    client.AppsV1Api(kube_cluster.api).create_namespaced_deployment(namespace, deployment("scaled", 1))
    auto = client.AutoscalingV2Api(kube_cluster.api)
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="scaled"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name="scaled"
            ),
            min_replicas=1,
            max_replicas=5,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu",
                        target=client.V2MetricTarget(type="Utilization", average_utilization=70),
                    ),
                )
            ],
        ),
    )
    auto.create_namespaced_horizontal_pod_autoscaler(namespace, hpa)

    stored = auto.read_namespaced_horizontal_pod_autoscaler("scaled", namespace)
    assert stored.spec is not None
    assert stored.spec.max_replicas == 5
    metric = (stored.spec.metrics or [])[0]
    assert metric.resource is not None
    assert metric.resource.target.average_utilization == 70

    # The HPA controller in kube-controller-manager picks it up (no metrics server, so it
    # reports conditions rather than scaling): proves the controller is running.
    def conditions_set() -> list[client.V2HorizontalPodAutoscalerCondition] | None:
        status = auto.read_namespaced_horizontal_pod_autoscaler("scaled", namespace).status
        return status.conditions if status is not None else None

    conditions = kube_cluster.poll("HPA status conditions", conditions_set, 90, interval_s=1)
    assert {c.type for c in conditions} >= {"AbleToScale"}


def widget_crd(group: str) -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["replicas", "maxReplicas"],
        "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "minimum": 0},
        },
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"}
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": spec_schema,
                                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_with_status_subresource_and_cel_rule(kube_cluster: KubeCluster, namespace: str) -> None:
    group = f"e2e{uuid.uuid4().hex[:8]}.quantum-router.test"
    ext = client.ApiextensionsV1Api(kube_cluster.api)
    custom = client.CustomObjectsApi(kube_cluster.api)
    # The client serialises plain dicts as they are; the cast only tells the type checker.
    ext.create_custom_resource_definition(cast(client.V1CustomResourceDefinition, widget_crd(group)))
    try:
        kube_cluster.poll(
            "CRD Established",
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (
                    getattr(
                        ext.read_custom_resource_definition(f"widgets.{group}").status, "conditions", None
                    )
                    or []
                )
            ),
            60,
        )

        def widget(name: str, replicas: int, max_replicas: int) -> dict[str, Any]:
            return {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"replicas": replicas, "maxReplicas": max_replicas},
            }

        # Discovery of a new group can lag Established by a moment: retry the first create.
        kube_cluster.poll(
            "first Widget created",
            lambda: _try(
                lambda: custom.create_namespaced_custom_object(
                    group, "v1", namespace, "widgets", widget("ok", 2, 3)
                )
            ),
            30,
        )
        with pytest.raises(ApiException) as rejected:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget("bad", 5, 3))
        assert rejected.value.status == 422
        assert "replicas must not exceed maxReplicas" in str(rejected.value.body)

        # The status subresource: status is written through /status only ...
        custom.patch_namespaced_custom_object_status(
            group, "v1", namespace, "widgets", "ok", {"status": {"ready": True}}
        )
        # ... and a write to the main resource changes spec but not status.
        custom.patch_namespaced_custom_object(
            group, "v1", namespace, "widgets", "ok", {"spec": {"replicas": 3}, "status": {"ready": False}}
        )
        stored = cast(
            dict[str, Any], custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "ok")
        )
        assert stored["status"] == {"ready": True}
        assert stored["spec"] == {"replicas": 3, "maxReplicas": 3}
        # The CEL rule also guards updates.
        with pytest.raises(ApiException) as rejected_update:
            custom.patch_namespaced_custom_object(
                group, "v1", namespace, "widgets", "ok", {"spec": {"replicas": 4}}
            )
        assert rejected_update.value.status == 422
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def _try(call: Any) -> Any:
    try:
        return call() or True
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_restart_keeps_objects_in_etcd(kube_cluster: KubeCluster, namespace: str) -> None:
    marker = uuid.uuid4().hex
    kube_cluster.core().create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="survivor"), data={"marker": marker})
    )
    old_pids = kube_cluster.pids()
    assert set(old_pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

    kube_cluster.down()
    assert not [name for name, pid in old_pids.items() if process_alive(pid)]
    kube_cluster.up()

    assert set(kube_cluster.pids().values()).isdisjoint(old_pids.values())
    cm = kube_cluster.core().read_namespaced_config_map("survivor", namespace)
    assert cm.data == {"marker": marker}
    nodes = kube_cluster.core().list_node(label_selector="type=kwok").items
    assert len(nodes) >= 1


def test_second_cluster_coexists_and_down_leaves_nothing_behind(
    kube_cluster: KubeCluster, cluster_factory: Callable[[], KubeCluster]
) -> None:
    other = cluster_factory()
    try:
        pids, ports = other.pids(), other.ports()
        assert len(pids) == 5
        # Different state dirs, different ports: both clusters answer at once.
        assert set(ports.values()).isdisjoint(kube_cluster.ports().values())
        assert other.server_version == kube_cluster.server_version
        assert kube_cluster.core().list_namespace().items
    finally:
        other.down()

    assert not [name for name, pid in pids.items() if process_alive(pid)]
    assert not [port for port in ports.values() if not port_free(port)]
    assert not list((other.state_dir / "run").glob("*.pid"))
    # Idempotent: down on a stopped cluster succeeds.
    other.down()
    # The session's cluster is untouched.
    assert kube_cluster.core().list_namespace().items
