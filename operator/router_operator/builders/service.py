"""Services: one shape for every Service of the stack, and the router's own."""

from __future__ import annotations

from typing import Any

from router_operator.builders.context import ROUTER_PORT, Context
from router_operator.builders.router import COMPONENT


def service_for(
    ctx: Context, name: str, component: str, ports: list[tuple[str, int]], **spec: Any
) -> dict[str, Any]:
    """A Service selecting one component's pods; each (name, port) targets the container port of that name.
    `spec` adds fields such as clusterIP: None (headless) or publishNotReadyAddresses."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.owner.metadata(name, component),
        "spec": {
            **spec,
            "selector": ctx.owner.selector(component),
            "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports],
        },
    }


def build_service(ctx: Context) -> dict[str, Any]:
    """ClusterIP Service in front of the ready router pods."""
    return service_for(ctx, ctx.owner.name, COMPONENT, [("http", ROUTER_PORT)], type="ClusterIP")
