"""The CRD in crds/ is generated from the spec models, documents every field and carries the CEL rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from router_operator.crd import build_crd, render

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "routerdeployment.yaml"


def walk(schema: dict[str, Any], path: str = "spec") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        out += walk(child, f"{path}.{name}")
    if "items" in schema:
        out += walk(schema["items"], f"{path}[]")
    return out


def version() -> dict[str, Any]:
    v: dict[str, Any] = build_crd()["spec"]["versions"][0]
    return v


def test_crd_file_is_current() -> None:
    assert CRD_FILE.read_text() == render(), (
        "run: .venv/bin/python -m router_operator.crd > crds/routerdeployment.yaml"
    )


def test_every_spec_field_has_a_description_and_leaves_have_defaults_or_are_optional_blocks() -> None:
    spec = version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = walk(spec)
    assert len(fields) > 60
    missing = [p for p, s in fields if "description" not in s and not p.endswith("[]")]
    assert not missing


def test_structural_schema_rules() -> None:
    for path, node in walk(version()["schema"]["openAPIV3Schema"], "root"):
        assert not ("properties" in node and "additionalProperties" in node), path
        assert "anyOf" not in node and "$ref" not in node, path
        if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
            assert node.get("x-kubernetes-preserve-unknown-fields") is True or path == "root.metadata", path


def test_subresources_columns_and_names() -> None:
    crd = build_crd()
    assert crd["spec"]["names"]["shortNames"] == ["rd"]
    assert "categories" not in crd["spec"]["names"]
    v = version()
    assert v["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert [c["name"] for c in v["additionalPrinterColumns"]] == [
        "Ready",
        "Replicas",
        "Phase",
        "Policy",
        "Age",
    ]


def test_cel_rules_are_present_where_promised() -> None:
    text = yaml.safe_dump(build_crd())
    for rule in (
        "self.minReplicas <= self.maxReplicas",
        "self.complexVariations <= self.maxVariations",
        "self.shards >= 3",
        "!(has(self.managed) && has(self.external))",
        "!(has(self.rayAddress) && has(self.ray))",
        "self.metadata.name.size() <= 40",
    ):
        assert rule in text, rule


def test_docs_reference_is_current() -> None:
    from router_operator.reference import update

    page = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    assert update(page) == page, "run: .venv/bin/python -m router_operator.reference docs/operator.md"
    assert "`spec.cache.managed.shards`" in page and "`MigrationFailed`" in page
