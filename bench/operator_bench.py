"""Operator at scale on the local control plane: apply-to-Ready for one RouterDeployment, then N at once.

    .venv/bin/python -m bench.operator_bench [--count 100] [--nodes 6]

Starts its own control plane (more kwok nodes, a larger Service range, raised controller QPS so the
client throttles are not what is measured), runs the real `router-operator`, and reports: seconds from
apply to Ready; seconds until all N are Ready; reconciles and API requests the operator made (from its
own counters, logged after every resync); and its resident memory (current and peak).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from router_operator.status import is_ready

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "e2e" / "controlplane" / "cluster.sh"
# Ephemeral data (kwok has no storage provisioner) and no Ray, so each stack is 10 pods + 2 Jobs.
SPEC: dict[str, Any] = {
    "training": {"enabled": False},
    "cache": {"managed": {"ephemeral": True}},
    "database": {"managed": {"ephemeral": True}},
}
TOTALS = re.compile(r"totals: (\d+) reconciles, (\d+) API requests")


def run(cmd: list[str], env: dict[str, str], **kwargs: Any) -> str:
    if "input" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kwargs).stdout


def manifest(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "quantumrouter.dev/v1alpha1",
        "kind": "RouterDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": SPEC,
    }


def ready_names(kubectl: list[str], env: dict[str, str], ns: str) -> set[str]:
    listed = json.loads(run([*kubectl, "get", "rd", "-n", ns, "-o", "json"], env))
    return {rd["metadata"]["name"] for rd in listed["items"] if is_ready(rd)}


def wait_all(kubectl: list[str], env: dict[str, str], ns: str, names: set[str], timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if names <= ready_names(kubectl, env, ns):
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(
        f"{len(names - ready_names(kubectl, env, ns))} of {len(names)} not Ready after {timeout_s}s"
    )


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def totals(log: Path) -> tuple[int, int]:
    found = TOTALS.findall(log.read_text())
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--resync", type=float, default=10.0, help="operator resync seconds")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="qr-operator-bench-"))
    env = {
        **os.environ,
        "QR_CLUSTER_DIR": str(state),
        "QR_KWOK_NODES": str(args.nodes),
        "QR_SERVICE_CIDR": "10.0.0.0/20",
        "QR_CLIENT_QPS": "200",
    }
    run([str(CLUSTER_SH), "build"], env, timeout=3600)
    out = run([str(CLUSTER_SH), "up"], env, timeout=600)
    exports = dict(
        line[len("export ") :].split("=", 1) for line in out.splitlines() if line.startswith("export ")
    )
    env["KUBECONFIG"] = exports["KUBECONFIG"]
    kubectl = [str(Path(exports["PATH"].split(":", 1)[0]) / "kubectl")]
    operator = None
    try:
        run([*kubectl, "apply", "--server-side", "-f", str(ROOT / "crds" / "routerdeployment.yaml")], env)
        run([*kubectl, "wait", "--for=condition=Established", "crd/routerdeployments.quantumrouter.dev"], env)
        for ns in ("one", "many"):
            run([*kubectl, "create", "namespace", ns], env)
        time.sleep(2)  # default ServiceAccounts
        log = state / "operator.log"
        op_env = {**env, "QR_OPERATOR_RESYNC_SECONDS": str(args.resync), "QR_OPERATOR_LIVENESS_PORT": "0"}
        with log.open("wb") as sink:
            operator = subprocess.Popen(
                [str(Path(sys.executable).parent / "router-operator")],
                env=op_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        time.sleep(3)
        idle_rss, _ = rss_kib(operator.pid)

        run([*kubectl, "apply", "-f", "-"], env, input=yaml.safe_dump(manifest("single", "one")))
        single_s = wait_all(kubectl, env, "one", {"single"}, 120)

        docs = "".join("---\n" + yaml.safe_dump(manifest(f"rd-{i:03d}", "many")) for i in range(args.count))
        before = totals(log)
        t0 = time.monotonic()
        run([*kubectl, "apply", "-f", "-"], env, input=docs)
        applied_s = time.monotonic() - t0
        all_s = wait_all(kubectl, env, "many", {f"rd-{i:03d}" for i in range(args.count)}, 900) + applied_s
        time.sleep(args.resync + 2)  # one full resync pass after Ready, so its counters are logged
        after = totals(log)
        rss, peak = rss_kib(operator.pid)
        reconciles, requests = after[0] - before[0], after[1] - before[1]
        result = {
            "count": args.count,
            "kwok_nodes": args.nodes,
            "single_apply_to_ready_s": round(single_s, 2),
            "kubectl_apply_s": round(applied_s, 2),
            "all_ready_s": round(all_s, 2),
            "reconciles_during_batch": reconciles,
            "api_requests_during_batch": requests,
            "api_requests_per_reconcile": round(requests / reconciles, 1) if reconciles else None,
            "operator_rss_idle_mib": round(idle_rss / 1024, 1),
            "operator_rss_after_mib": round(rss / 1024, 1),
            "operator_rss_peak_mib": round(peak / 1024, 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=60)
        run([str(CLUSTER_SH), "down"], env, timeout=300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
