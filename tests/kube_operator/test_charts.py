"""The charts' generated parts are current and every value is documented (no cluster, no helm needed;
rendering and installing are in e2e/test_charts.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from router_operator.chart import OPERATOR_CHART, documented_values, render_files
from router_operator.crd import render

ROOT = Path(__file__).resolve().parents[2]


def leaves(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [
            leaf for key, value in node.items() for leaf in leaves(value, f"{path}.{key}" if path else key)
        ]
    return [path]


def test_generated_chart_files_are_current() -> None:
    for path, text in render_files().items():
        assert path.read_text() == text, (
            f"stale {path.relative_to(ROOT)}: run .venv/bin/python -m router_operator.chart"
        )


def test_chart_crd_is_the_generated_crd() -> None:
    chart_copy = (OPERATOR_CHART / "files" / "routerdeployment.yaml").read_text()
    assert chart_copy == render() == (ROOT / "crds" / "routerdeployment.yaml").read_text(), "run: make crds"


def test_every_operator_value_is_documented_and_allowed_by_the_schema() -> None:
    text = (OPERATOR_CHART / "values.yaml").read_text()
    documented = {key for key, _, _ in documented_values(text)}
    for leaf in leaves(yaml.safe_load(text)):
        assert any(leaf == d or leaf.startswith(d + ".") for d in documented), leaf
    schema = json.loads((OPERATOR_CHART / "values.schema.json").read_text())
    for key in documented:
        node = schema
        for part in key.split("."):
            assert part in node["properties"], key
            node = node["properties"][part]


def test_router_chart_schema_refuses_unknown_keys_everywhere() -> None:
    schema = json.loads((ROOT / "charts" / "quantum-router" / "values.schema.json").read_text())

    def check(node: dict[str, Any], where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            for name, child in node["properties"].items():
                check(child, f"{where}.{name}")

    check(schema, "values")
    assert {"nameOverride", "labels", "replicas", "cache", "database"} <= set(schema["properties"])
