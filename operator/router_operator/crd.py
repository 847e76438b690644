"""The RouterDeployment CustomResourceDefinition, generated from the typed spec (spec.py).

`python -m router_operator.crd > crds/routerdeployment.yaml` writes it; a test keeps the file in sync.
Pydantic's JSON Schema is turned into a structural OpenAPI v3 schema: references inlined, optional
fields un-nulled, titles dropped, descriptions and defaults kept, CEL rules carried through.
"""

from __future__ import annotations

import sys
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from router_operator import GROUP, KIND, PLURAL, VERSION
from router_operator.spec import RouterDeploymentSpec, cel
from router_operator.status import REASONS
from router_operator.validation import MAX_NAME_LENGTH

DROP = {
    "title",
    "additionalProperties",
    "$defs",
}  # structural schemas forbid properties + additionalProperties


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """One JSON Schema node as a structural-schema node."""
    if isinstance(node, list):
        return [structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**structural(options[0], defs), **structural(rest, defs)}
            if merged.get("default", "") is None:
                del merged["default"]
            return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROP or (key == "default" and value is None):
            continue
        if key in ("properties",):
            out[key] = {name: structural(v, defs) for name, v in value.items()}
        elif key == "additionalProperties" or key in ("items",):
            out[key] = structural(value, defs)
        else:
            out[key] = structural(value, defs)
    if (
        "additionalProperties" in node
        and "properties" not in node
        and isinstance(node["additionalProperties"], dict)
    ):
        out["additionalProperties"] = structural(node["additionalProperties"], defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    return out


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside `Model` or `Model | None`, if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def add_factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Pydantic leaves default_factory values out of the schema; the API server must apply them too,
    or a defaulted-but-empty object would reach the operator as an explicit empty value."""
    props = schema.get("properties") or {}
    for name, info in model.model_fields.items():
        prop = props.get(info.alias or name)
        if prop is None:
            continue
        if info.default_factory is not None and "default" not in prop:
            value = info.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                same = value == type(value)()
                prop["default"] = {} if same else value.model_dump(by_alias=True, exclude_none=True)
            else:
                prop["default"] = value
        nested = model_of(info.annotation)
        if nested is not None:
            add_factory_defaults(nested, prop)


def spec_schema() -> dict[str, Any]:
    """The structural schema of `spec`."""
    raw = RouterDeploymentSpec.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = structural(raw, raw.get("$defs", {}))
    add_factory_defaults(RouterDeploymentSpec, schema)
    return schema


def condition_schema() -> dict[str, Any]:
    """One status condition."""
    reasons = sorted({r for rs in REASONS.values() for r in rs} | {"ApplyFailed"})
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "enum": ["Ready", *REASONS], "description": "Condition type."},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "Status."},
            "reason": {"type": "string", "enum": reasons, "description": "Machine-readable reason."},
            "message": {"type": "string", "description": "What is wrong, and what to do about it."},
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When status last changed.",
            },
            "observedGeneration": {
                "type": "integer",
                "description": "Spec generation this was computed for.",
            },
        },
    }


def status_schema() -> dict[str, Any]:
    """The structural schema of `status` (written by the operator only)."""

    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    def count(description: str) -> dict[str, Any]:
        return {"type": "integer", "description": description}

    return {
        "type": "object",
        "description": "Observed state, written by the operator.",
        "properties": {
            "phase": {
                "type": "string",
                "enum": ["Progressing", "Ready", "Degraded", "Failed"],
                "description": "Summary: Ready, Progressing, Degraded (serving, not whole), Failed.",
            },
            "phaseReason": text("Reason of the condition that decides the phase."),
            "observedGeneration": count("Spec generation last reconciled."),
            "replicas": count("Router pods."),
            "readyReplicas": count("Router pods ready."),
            "updatedReplicas": count("Router pods on the current template."),
            "selector": text("Label selector of the router pods (for the scale subresource)."),
            "policyVersion": text("Routing policy version the router Service serves."),
            "endpoints": {
                "type": "object",
                "description": "In-cluster addresses of router, redis, database (rw, ro) and ray.",
                "additionalProperties": {"type": "string"},
            },
            "conditions": {
                "type": "array",
                "description": "Ready, SpecValid, MigrationsSucceeded, ServiceAvailable, CacheReady, "
                "DatabaseReady, "
                "TrainingReady.",
                "items": condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition."""
    spec = spec_schema()
    spec["description"] = "Desired state of the router stack. Every field has a default."
    root = {
        "type": "object",
        "description": "A Quantum Router stack: router pods, cache, database, training.",
        "properties": {
            "apiVersion": {"type": "string", "description": "API version."},
            "kind": {"type": "string", "description": "Kind."},
            "metadata": {"type": "object"},
            "spec": {**spec, "default": {}},
            "status": status_schema(),
        },
        "x-kubernetes-validations": [
            cel(
                f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters (children add suffixes)",
            )
        ],
    }
    columns = [
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Whether the stack serves."),
        ("Replicas", "integer", ".status.readyReplicas", "Ready router pods."),
        ("Phase", "string", ".status.phase", "Summary phase."),
        ("Policy", "string", ".status.policyVersion", "Serving policy version."),
        ("Age", "date", ".metadata.creationTimestamp", "Age."),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "routerdeployment", "kind": KIND, "shortNames": ["rd"]},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p, "description": d} for n, t, p, d in columns
                    ],
                }
            ],
        },
    }


def render() -> str:
    """The CRD as the YAML file in crds/."""
    header = (
        "# Generated by `python -m router_operator.crd` from operator/router_operator/spec.py; do not edit.\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=110)


if __name__ == "__main__":
    sys.stdout.write(render())
