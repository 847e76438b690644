"""The Helm charts on the local control plane: lint, render, schema, install, the operator on the chart's
ServiceAccount (RBAC is enough and no more), upgrade, rollback, uninstall."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml
from kubernetes import client

from router_operator.status import is_ready

if TYPE_CHECKING:
    from conftest import KubeCluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_CHART = ROOT / "charts" / "quantum-router-operator"
ROUTER_CHART = ROOT / "charts" / "quantum-router"
KUBE_VERSION = "--kube-version=1.36.3"
GROUP, VERSION, PLURAL = "quantumrouter.dev", "v1alpha1", "routerdeployments"
# Ephemeral data: kwok nodes have no volume provisioner.
LIGHT = [
    "--set",
    "training.enabled=false",
    "--set",
    "cache.managed.ephemeral=true",
    "--set",
    "database.managed.ephemeral=true",
]


def helm(cluster: KubeCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CACHE_HOME": str(cluster.state_dir / "helm"),
        "HELM_CONFIG_HOME": str(cluster.state_dir / "helm"),
        "HELM_DATA_HOME": str(cluster.state_dir / "helm"),
    }
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def kubectl_input(cluster: KubeCluster, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_charts_lint_strict(kube_cluster: KubeCluster) -> None:
    for chart in (OPERATOR_CHART, ROUTER_CHART):
        out = helm(kube_cluster, "lint", "--strict", str(chart), KUBE_VERSION)
        assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "rbac.scope=namespace", "--set", "watchNamespaces={NS,default}"],
        ["--set", "replicaCount=2", "--set", "peering.name=quantum-router", "--set", "crds.install=false"],
        [
            "--set",
            "monitoring.serviceMonitor.enabled=false",
            "--set",
            "operator.verbose=true",
            "--set",
            "serviceAccount.name=qr",
            "--set",
            "image.tag=0.2.0",
        ],
    ],
)
def test_operator_chart_renders_objects_the_api_server_accepts(
    kube_cluster: KubeCluster, namespace: str, values: list[str]
) -> None:
    values = [v.replace("NS", namespace) for v in values]
    rendered = helm(
        kube_cluster, "template", "qr", str(OPERATOR_CHART), "-n", namespace, KUBE_VERSION, *values
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    dry = kubectl_input(kube_cluster, rendered, "apply", "--dry-run=server", "-f", "-")
    assert dry.returncode == 0, dry.stderr


def test_router_chart_renders_a_resource_the_crd_accepts(kube_cluster: KubeCluster, namespace: str) -> None:
    kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "routerdeployment.yaml")
    )
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/routerdeployments.quantumrouter.dev")
    for values in ([], ["--set", "replicas=3", "--set", "autoscaling.maxReplicas=5"], LIGHT):
        rendered = helm(
            kube_cluster, "template", "r", str(ROUTER_CHART), "-n", namespace, KUBE_VERSION, *values
        ).stdout
        dry = kubectl_input(kube_cluster, rendered, "apply", "--dry-run=server", "-n", namespace, "-f", "-")
        assert dry.returncode == 0, dry.stderr
    # A value the schema allows but a CEL rule refuses is refused by the API server, with its message.
    bad = helm(
        kube_cluster,
        "template",
        "r",
        str(ROUTER_CHART),
        "-n",
        namespace,
        KUBE_VERSION,
        "--set",
        "replicas=20",
        "--set",
        "autoscaling.maxReplicas=5",
    ).stdout
    refused = kubectl_input(kube_cluster, bad, "apply", "--dry-run=server", "-n", namespace, "-f", "-")
    assert refused.returncode != 0 and "must not exceed autoscaling.maxReplicas" in refused.stderr


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (OPERATOR_CHART, ["--set", "imagee.tag=x"], "additional properties 'imagee' not allowed"),
        (OPERATOR_CHART, ["--set", "rbac.scope=everywhere"], "/rbac/scope"),
        (OPERATOR_CHART, ["--set", "replicaCount=2"], "replicaCount > 1 needs peering.name"),
        (OPERATOR_CHART, ["--set", "rbac.scope=namespace"], "rbac.scope=namespace needs watchNamespaces"),
        (ROUTER_CHART, ["--set", "replica=3"], "additional properties 'replica' not allowed"),
        (ROUTER_CHART, ["--set", "replicas=many"], "/replicas"),
        (ROUTER_CHART, ["--set", "cache.managed.shards=0"], "/cache/managed/shards"),
    ],
)
def test_wrong_values_are_refused_with_the_field(
    kube_cluster: KubeCluster, chart: Path, values: list[str], message: str
) -> None:
    out = helm(kube_cluster, "template", "x", str(chart), KUBE_VERSION, *values, check=False)
    assert out.returncode != 0
    assert message in out.stderr


def service_account_kubeconfig(cluster: KubeCluster, sa: str, ns: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a TokenRequest token)."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl("create", "token", sa, "-n", ns).strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return path


def can(cluster: KubeCluster, sa: str, verb: str, resource: str, ns: str) -> bool:
    proc = subprocess.run(
        [
            str(cluster.bin_dir / "kubectl"),
            f"--kubeconfig={cluster.kubeconfig}",
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            ns,
            f"--as={sa}",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.strip() == "yes"


@pytest.fixture
def operator_release(kube_cluster: KubeCluster) -> Iterator[str]:
    """The operator chart installed in a namespace of its own; uninstalled (and checked) by the test."""
    ns = f"qr-system-{uuid.uuid4().hex[:6]}"
    crd = "crd/routerdeployments.quantumrouter.dev"
    if kube_cluster.kubectl("get", "crd", "-o", "name").count("routerdeployments.quantumrouter.dev"):
        # Installed earlier with kubectl: let the release adopt it, as docs/operations.md describes.
        kube_cluster.kubectl("label", "--overwrite", crd, "app.kubernetes.io/managed-by=Helm")
        kube_cluster.kubectl(
            "annotate",
            "--overwrite",
            crd,
            "meta.helm.sh/release-name=qr",
            f"meta.helm.sh/release-namespace={ns}",
        )
    helm(kube_cluster, "install", "qr", str(OPERATOR_CHART), "-n", ns, "--create-namespace", "--wait=false")
    yield ns
    helm(kube_cluster, "uninstall", "qr", "-n", ns, check=False)
    kube_cluster.kubectl("delete", "namespace", ns, "--wait=false")


def deployment_of(cluster: KubeCluster, ns: str, name: str) -> Any:
    return client.AppsV1Api(cluster.api).read_namespaced_deployment(name, ns)


def rd_ready(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any] | None:
    rd = cast(
        dict[str, Any],
        client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name),
    )
    return rd if is_ready(rd) else None


def test_install_upgrade_rollback_uninstall_with_the_operator_on_its_chart_rbac(
    kube_cluster: KubeCluster, operator_release: str, namespace: str, tmp_path: Path
) -> None:
    system = operator_release
    sa = f"system:serviceaccount:{system}:qr-quantum-router-operator"
    # The chart's operator pod runs on a kwok node, which runs nothing: run the real operator here, with
    # exactly the chart's ServiceAccount credentials, so the test proves the chart's RBAC.
    kubeconfig = service_account_kubeconfig(
        kube_cluster, "qr-quantum-router-operator", system, tmp_path / "sa"
    )
    log_path = tmp_path / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "QR_OPERATOR_RESYNC_SECONDS": "2",
        "QR_OPERATOR_LIVENESS_PORT": "0",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "router-operator")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        helm(kube_cluster, "install", "router", str(ROUTER_CHART), "-n", namespace, *LIGHT)
        try:
            kube_cluster.poll(
                "Ready through the chart", lambda: rd_ready(kube_cluster, namespace, "router"), 120
            )
        except AssertionError:
            sys.stderr.write(log_path.read_text()[-4000:])
            raise
        apps = client.AppsV1Api(kube_cluster.api)
        kube_cluster.poll(
            "HPA minimum", lambda: deployment_of(kube_cluster, namespace, "router").spec.replicas == 2, 60
        )

        # upgrade: autoscaling off and 3 replicas -> the Deployment owns its replica count again
        helm(
            kube_cluster,
            "upgrade",
            "router",
            str(ROUTER_CHART),
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            "autoscaling.enabled=false",
            "--set",
            "replicas=3",
        )
        kube_cluster.poll(
            "3 replicas", lambda: deployment_of(kube_cluster, namespace, "router").spec.replicas == 3, 60
        )
        kube_cluster.poll(
            "HPA pruned",
            lambda: (
                not client.AutoscalingV2Api(kube_cluster.api)
                .list_namespaced_horizontal_pod_autoscaler(namespace)
                .items
            ),
            60,
        )

        # rollback: the HPA is back and owns the count
        helm(kube_cluster, "rollback", "router", "1", "-n", namespace)
        kube_cluster.poll(
            "HPA back",
            lambda: (
                client.AutoscalingV2Api(kube_cluster.api)
                .list_namespaced_horizontal_pod_autoscaler(namespace)
                .items
            ),
            60,
        )
        kube_cluster.poll("Ready after rollback", lambda: rd_ready(kube_cluster, namespace, "router"), 120)

        # uninstall the router: the RouterDeployment and every child go
        helm(kube_cluster, "uninstall", "router", "-n", namespace)
        kube_cluster.poll(
            "children gone",
            lambda: (
                not apps.list_namespaced_deployment(namespace).items
                and not apps.list_namespaced_stateful_set(namespace).items
            ),
            120,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    output = log_path.read_text()
    forbidden = [line[:300] for line in output.splitlines() if "403" in line or "forbidden" in line.lower()]
    assert not forbidden, forbidden[:5]
    # ... and nothing beyond what it needs.
    assert can(kube_cluster, sa, "patch", "deployments", namespace)
    assert can(kube_cluster, sa, "create", "secrets", namespace)
    for verb, resource in [
        ("update", "deployments"),
        ("delete", "secrets"),
        ("list", "secrets"),
        ("get", "pods"),
        ("create", "pods"),
        ("patch", "routerdeployments.quantumrouter.dev"),
        ("delete", "routerdeployments.quantumrouter.dev"),
        ("watch", "configmaps"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("delete", "namespaces"),
    ]:
        assert not can(kube_cluster, sa, verb, resource, namespace), (verb, resource)

    # uninstall the operator: its objects go, the CRD stays (crds.keep)
    helm(kube_cluster, "uninstall", "qr", "-n", system)
    kube_cluster.poll(
        "operator objects gone",
        lambda: not client.AppsV1Api(kube_cluster.api).list_namespaced_deployment(system).items,
        60,
    )
    assert (
        not client.RbacAuthorizationV1Api(kube_cluster.api)
        .list_cluster_role(label_selector="app.kubernetes.io/instance=qr")
        .items
    )
    kube_cluster.kubectl("get", "crd", "routerdeployments.quantumrouter.dev")


def test_namespace_scoped_rbac_reaches_only_the_watched_namespaces(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    ns = f"qr-ns-{uuid.uuid4().hex[:6]}"
    helm(
        kube_cluster,
        "install",
        "qrn",
        str(OPERATOR_CHART),
        "-n",
        ns,
        "--create-namespace",
        "--wait=false",
        "--set",
        "rbac.scope=namespace",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        "crds.install=false",
    )
    try:
        sa = f"system:serviceaccount:{ns}:qrn-quantum-router-operator"
        assert can(kube_cluster, sa, "patch", "deployments", namespace)
        assert not can(kube_cluster, sa, "patch", "deployments", "default")
        assert not can(kube_cluster, sa, "get", "routerdeployments.quantumrouter.dev", "default")
    finally:
        helm(kube_cluster, "uninstall", "qrn", "-n", ns, check=False)
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false")
