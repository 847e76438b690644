"""The router HorizontalPodAutoscaler (autoscaling/v2)."""

from __future__ import annotations

from typing import Any

from router_operator.builders.context import Context
from router_operator.builders.router import COMPONENT

INFLIGHT_METRIC = "quantum_router_inflight_requests"


def utilisation(resource: str, percent: int) -> dict[str, Any]:
    """A Resource metric with an average utilisation target."""
    target = {"type": "Utilization", "averageUtilization": percent}
    return {"type": "Resource", "resource": {"name": resource, "target": target}}


def build_hpa(ctx: Context) -> dict[str, Any] | None:
    """CPU, memory and optionally in-flight requests per pod, the spec's behavior; None when autoscaling
    is off."""
    auto = ctx.spec.autoscaling
    if not auto.enabled:
        return None
    metrics = []
    if auto.target_cpu_utilization is not None:
        metrics.append(utilisation("cpu", auto.target_cpu_utilization))
    if auto.target_memory_utilization is not None:
        metrics.append(utilisation("memory", auto.target_memory_utilization))
    if auto.target_inflight_requests is not None:
        target = {"type": "AverageValue", "averageValue": str(auto.target_inflight_requests)}
        metrics.append({"type": "Pods", "pods": {"metric": {"name": INFLIGHT_METRIC}, "target": target}})
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ctx.owner.name},
        "minReplicas": ctx.spec.min_replicas,
        "maxReplicas": auto.max_replicas,
        "metrics": metrics,
    }
    if auto.behavior is not None:
        spec["behavior"] = dict(auto.behavior)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.owner.metadata(ctx.owner.name, COMPONENT),
        "spec": spec,
    }
