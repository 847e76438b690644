"""The operator chart's monitoring: the ServiceMonitor finds the Services the operator builds, the
PrometheusRule and the dashboard query only metrics the router exports, and the values reach the objects.

Rendering uses helm from the local control plane's toolchain (``cluster.sh build`` prints where it is; the
binaries are cached, so it returns at once after the first build). No cluster is started.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from quantum_router.app import create_app
from tests.conftest import login, make_settings
from tests.kube_operator.conftest import sample

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "quantum-router-operator"
DASHBOARD = CHART / "dashboards" / "quantum-router.json"
PANELS = {
    "Request rate",
    "Latency percentiles",
    "Model share",
    "Cost per request",
    "Cache hit ratio",
    "Database pool efficiency",
    "Policy version",
    "In-flight requests",
}
# Words of PromQL that are not metric names (functions are recognised by their parenthesis).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
_KEYWORDS |= {"offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")

Render = Callable[..., list[dict[str, Any]]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges,
    grouping clauses, functions and keywords are taken out."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = _GROUPING.sub("", bare)
    return {name for name in _IDENTIFIER.findall(bare) if name.lower() not in _KEYWORDS}


def test_metric_names_are_found_in_expressions_with_every_kind_of_clause() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (namespace, le) (rate(a_bucket{route!~"/x|(y)"}[5m]))) > 1e-05'
        " or b_total / ignoring(model) group_left sum(c) and on() vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


@pytest.fixture(scope="module")
def helm() -> Path:
    """helm from the control plane's toolchain, which prints ``export PATH=<bindir>:$PATH``."""
    built = subprocess.run(
        ["bash", str(REPO / "e2e" / "controlplane" / "cluster.sh"), "build"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"^export PATH=(.+):\$PATH$", built.stdout, re.MULTILINE)
    assert found, built.stdout
    return Path(found.group(1)) / "helm"


@pytest.fixture(scope="module")
def kube_version() -> str:
    # The chart requires a kubeVersion; helm template assumes an old one unless told. Use the version the
    # local control plane runs.
    pins = (REPO / "e2e" / "controlplane" / "versions.env").read_text()
    found = re.search(r"^KUBE_VERSION=(\S+)$", pins, re.MULTILINE)
    assert found
    return found.group(1)


@pytest.fixture
def render(helm: Path, kube_version: str) -> Render:
    """render(template, *helm args) -> the objects that template renders."""

    def run(template: str, *args: str) -> list[dict[str, Any]]:
        result = _helm_template(helm, kube_version, template, *args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return run


def _helm_template(
    helm: Path, kube_version: str, template: str, *args: str
) -> subprocess.CompletedProcess[str]:
    command = [str(helm), "template", "t", str(CHART), "--kube-version", kube_version]
    command += ["--show-only", f"templates/{template}", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name in a real /metrics after a login, an execution and a readiness probe, so the
    labelled series exist (histograms count as their _bucket, _sum and _count). One app for the module:
    tests/conftest.py's client fixtures are per test."""
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("router")))) as client:
        auth = login(client)
        body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
        assert client.post("/v1/execute", json=body, headers=auth).status_code == 200
        assert client.get("/readyz").status_code == 200
        text = client.get("/metrics").text
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def rule_exprs(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Alert name -> expression."""
    rules = objects[0]["spec"]["groups"][0]["rules"]
    return {r["alert"]: r["expr"] for r in rules}


def dashboard_exprs() -> list[str]:
    """Every panel's query and every templating variable's label_values metric."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.match(r"label_values\((\w+)", variable["query"])
            assert found, variable["query"]
            exprs.append(found.group(1))
    return exprs


def test_the_rules_query_only_metrics_the_router_exports(render: Render, exported: set[str]) -> None:
    exprs = rule_exprs(render("prometheusrule.yaml", "--set", "monitoring.prometheusRule.enabled=true"))
    for alert, expr in exprs.items():
        used = metric_names(expr)
        assert used, alert
        assert used <= exported, f"{alert} uses {used - exported}, not in /metrics"


def test_the_dashboard_queries_only_metrics_the_router_exports(exported: set[str]) -> None:
    for expr in dashboard_exprs():
        used = metric_names(expr)
        assert used, expr
        assert used <= exported, f"{used - exported} not in /metrics: {expr}"


def test_the_dashboard_has_its_panels_and_router_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert {p["title"] for p in dashboard["panels"]} >= PANELS
    assert all(p["targets"] for p in dashboard["panels"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"namespace", "instance"} <= set(variables)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"]
            assert 'service=~"$instance"' in target["expr"]
    assert 38 <= dashboard["schemaVersion"] <= 41


def test_the_rules_carry_the_thresholds_severity_texts_and_labels(render: Render) -> None:
    # --set-json: plain --set would hand helm the string "0.125", which a strict schema refuses.
    (rule,) = render(
        "prometheusrule.yaml",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set-json",
        "monitoring.prometheusRule.errorRateThreshold=0.125",
        "--set-json",
        "monitoring.prometheusRule.p99LatencySeconds=3.5",
        "--set",
        "monitoring.prometheusRule.labels.release=prometheus",
    )
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    exprs = rule_exprs([rule])
    assert set(exprs) == {
        "QuantumRouterHighErrorRate",
        "QuantumRouterHighLatency",
        "QuantumRouterCacheDegraded",
        "QuantumRouterDatabaseUnavailable",
    }
    assert re.search(r"\)\s*> 0\.125\s*$", exprs["QuantumRouterHighErrorRate"])
    assert 'status=~"5.."' in exprs["QuantumRouterHighErrorRate"]
    assert "histogram_quantile(0.99" in exprs["QuantumRouterHighLatency"]
    assert re.search(r"\)\s*> 3\.5\s*$", exprs["QuantumRouterHighLatency"])
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(r["annotations"])
        # One alert per router: every aggregation keeps the namespace and the Service.
        aggregations = re.findall(r"\b(?:sum|min|max) by \(([^)]*)\)", r["expr"])
        assert aggregations, r["alert"]
        assert all({"namespace", "service"} <= {x.strip() for x in a.split(",")} for a in aggregations)
        assert "{{ $labels.namespace }}/{{ $labels.service }}" in r["annotations"]["summary"]


def test_the_service_monitor_selects_the_router_services_the_operator_builds(
    render: Render, build: Callable[..., dict[tuple[str, str], dict[str, Any]]]
) -> None:
    (monitor,) = render(
        "servicemonitor.yaml",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.serviceMonitor.interval=15s",
        "--set",
        "monitoring.serviceMonitor.labels.release=prometheus",
    )
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    wanted = spec["selector"]["matchLabels"]
    services = {name: o for (kind, name), o in build(sample("full")["spec"]).items() if kind == "Service"}
    selected = [n for n, o in services.items() if wanted.items() <= o["metadata"]["labels"].items()]
    assert selected == ["demo"]  # the router, not its Redis or database Services
    assert "http" in {p["name"] for p in services["demo"]["spec"]["ports"]}


def test_a_namespaced_operator_s_monitor_looks_only_in_the_watched_namespaces(render: Render) -> None:
    (monitor,) = render(
        "servicemonitor.yaml",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "watchNamespaces={team-a,team-b}",
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_the_dashboard_config_map_holds_the_dashboard_for_the_grafana_sidecar(render: Render) -> None:
    args = ("--set", "monitoring.grafanaDashboard.enabled=true", "--namespace", "qr-system")
    (here,) = render("grafana-dashboard.yaml", *args)
    assert here["kind"] == "ConfigMap"
    assert here["metadata"]["namespace"] == "qr-system"
    assert here["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(here["data"]["quantum-router.json"]) == json.loads(DASHBOARD.read_text())
    (there,) = render(
        "grafana-dashboard.yaml", *args, "--set", "monitoring.grafanaDashboard.namespace=grafana"
    )
    assert there["metadata"]["namespace"] == "grafana"


@pytest.mark.parametrize("template", ["servicemonitor.yaml", "prometheusrule.yaml", "grafana-dashboard.yaml"])
def test_monitoring_is_off_by_default(helm: Path, kube_version: str, template: str) -> None:
    # helm refuses --show-only for a template that renders nothing.
    result = _helm_template(helm, kube_version, template)
    assert result.returncode != 0
    assert "could not find template" in result.stderr
