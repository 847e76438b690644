"""operator/rbac.yaml is enough for the operator and no more: it runs on the ServiceAccount's token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml
from kubernetes import client

if TYPE_CHECKING:
    from conftest import KubeCluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SA = "system:serviceaccount:quantum-router-system:quantum-router-operator"


def service_account_kubeconfig(cluster: KubeCluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a TokenRequest token)."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl(
        "create", "token", "quantum-router-operator", "-n", "quantum-router-system"
    ).strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    return path


@pytest.fixture
def rbac(kube_cluster: KubeCluster) -> Iterator[None]:
    crd = ROOT / "crds" / "routerdeployment.yaml"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kube_cluster.kubectl("apply", "-f", str(ROOT / "operator" / "rbac.yaml"))
    yield
    kube_cluster.kubectl("delete", "-f", str(ROOT / "operator" / "rbac.yaml"), "--wait=false")


def can(cluster: KubeCluster, verb: str, resource: str, ns: str) -> bool:
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
            f"--as={SA}",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.strip() == "yes"


def test_operator_runs_on_its_service_account_and_rbac_grants_no_more(
    kube_cluster: KubeCluster, rbac: None, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(kube_cluster, tmp_path / "sa.kubeconfig")
    log_path = tmp_path / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "QR_OPERATOR_RESYNC_SECONDS": "2",
        "QR_OPERATOR_LIVENESS_PORT": "0",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "router-operator"), "--namespace", namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        body = {
            "apiVersion": "quantumrouter.dev/v1alpha1",
            "kind": "RouterDeployment",
            "metadata": {"name": "sa"},
            "spec": {"cache": {"managed": {"ephemeral": True}}, "database": {"managed": {"ephemeral": True}}},
        }
        api = client.CustomObjectsApi(kube_cluster.api)
        api.create_namespaced_custom_object(
            "quantumrouter.dev", "v1alpha1", namespace, "routerdeployments", body
        )

        def ready() -> dict[str, Any] | None:
            rd = cast(
                dict[str, Any],
                api.get_namespaced_custom_object(
                    "quantumrouter.dev", "v1alpha1", namespace, "routerdeployments", "sa"
                ),
            )
            conds = {c["type"]: c for c in (rd.get("status") or {}).get("conditions") or []}
            return rd if conds.get("Ready", {}).get("status") == "True" else None

        try:
            kube_cluster.poll("Ready with the ServiceAccount's rights", ready, 120)
        except AssertionError:
            sys.stderr.write(log_path.read_text()[-4000:])
            raise
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    output = log_path.read_text()
    forbidden = [line[:300] for line in output.splitlines() if "403" in line or "forbidden" in line.lower()]
    assert not forbidden, forbidden[:5]
    # ... and no more than it needs.
    assert can(kube_cluster, "patch", "deployments", namespace)
    assert can(kube_cluster, "create", "secrets", namespace)
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
    ]:
        assert not can(kube_cluster, verb, resource, namespace), (verb, resource)
