"""Helpers for the operator's unit tests: samples parsed into contexts, plans indexed by kind and name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_operator.builders import Context, Facts, Plan, plan
from router_operator.owner import Owner
from router_operator.validation import validate

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def sample(name: str) -> dict[str, Any]:
    """A sample RouterDeployment from crds/samples."""
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return loaded


def context(spec: dict[str, Any], name: str = "demo", facts: Facts | None = None) -> Context:
    """A Context for a spec as the API server would hand it over."""
    return Context(Owner(name=name, namespace="team-a", uid="uid-1"), validate(name, spec), facts or Facts())


def by_name(p: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    """Every child of a plan keyed by (kind, name)."""
    return {(o["kind"], o["metadata"]["name"]): o for o in p.objects}


@pytest.fixture
def build() -> Callable[..., dict[tuple[str, str], dict[str, Any]]]:
    """build(spec, **context kwargs) -> children by (kind, name)."""

    def run(spec: dict[str, Any], **kwargs: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return by_name(plan(context(spec, **kwargs)))

    return run
