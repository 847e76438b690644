"""The router PodDisruptionBudget, only when it can never block a node drain."""

from __future__ import annotations

from typing import Any

from router_operator.builders.context import Context
from router_operator.builders.router import COMPONENT


def build_pdb(ctx: Context) -> dict[str, Any] | None:
    """maxUnavailable 1 when at least two router pods are guaranteed; None (no PDB) otherwise."""
    if ctx.spec.min_replicas < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.owner.metadata(ctx.owner.name, COMPONENT),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": ctx.owner.selector(COMPONENT)}},
    }
