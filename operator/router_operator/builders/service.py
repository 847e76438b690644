"""The router Service."""

from __future__ import annotations

from typing import Any

from router_operator.builders.context import ROUTER_PORT, Context
from router_operator.builders.router import COMPONENT


def build_service(ctx: Context) -> dict[str, Any]:
    """ClusterIP Service in front of the ready router pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.owner.metadata(ctx.owner.name, COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": ctx.owner.selector(COMPONENT),
            "ports": [{"name": "http", "port": ROUTER_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
