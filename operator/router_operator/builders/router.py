"""The router Deployment: probes, drain, rolling update, spread, and a checksum that rolls config changes."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders.config import (
    CATALOG_DIR,
    CATALOG_KEY,
    PRESTOP_SLEEP_SECONDS,
    SHUTDOWN_GRACE_SECONDS,
    config_name,
)
from router_operator.builders.connections import router_env
from router_operator.builders.context import ROUTER_PORT, Context
from router_operator.spec import Catalog

COMPONENT = "router"
CHECKSUM_ANNOTATION = "quantumrouter.dev/config-checksum"


def catalog_volume(ctx: Context, catalog: Catalog) -> dict[str, Any] | None:
    """The volume holding catalog.yaml: the router ConfigMap's key or the referenced ConfigMap's."""
    if catalog.config_map_ref is not None:
        ref = catalog.config_map_ref
        return {
            "name": "catalog",
            "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": CATALOG_KEY}]},
        }
    if catalog.inline is not None:
        items = [{"key": CATALOG_KEY, "path": CATALOG_KEY}]
        return {"name": "catalog", "configMap": {"name": config_name(ctx), "items": items}}
    return None


def router_container(ctx: Context, args: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The router image's container running `args`, with its settings, secrets and volumes."""
    tmp_volume, tmp_mount = pods.tmp_volume()
    volumes, mounts = [tmp_volume], [tmp_mount]
    catalog = catalog_volume(ctx, ctx.spec.catalog)
    if catalog is not None:
        volumes.append(catalog)
        mounts.append({"name": "catalog", "mountPath": CATALOG_DIR, "readOnly": True})
    container = {
        "name": COMPONENT,
        "image": ctx.spec.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "args": args,
        "envFrom": [{"configMapRef": {"name": config_name(ctx)}}],
        "env": router_env(ctx),
        "volumeMounts": mounts,
        "securityContext": pods.container_security(),
    }
    return container, volumes


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    """An HTTP probe on the router port."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_deployment(ctx: Context, checksum: str) -> dict[str, Any]:
    """The router Deployment. No replica count while the HPA owns it, so the two never fight."""
    spec, owner = ctx.spec, ctx.owner
    container, volumes = router_container(ctx, ["quantum-router", "serve"])
    container |= {
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "resources": pods.resources(spec.resources),
        # Liveness never touches the database or Redis: their outage must not restart every pod.
        "startupProbe": probe("/livez", 2, 30),
        "livenessProbe": probe("/livez", 10, 3),
        "readinessProbe": probe("/readyz", 5, 2),
        # Keep serving while endpoints drop this pod; then SIGTERM lets in-flight work finish.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
    }
    pod_spec = pods.pod_spec(
        spec.placement,
        [container],
        volumes,
        terminationGracePeriodSeconds=PRESTOP_SLEEP_SECONDS + SHUTDOWN_GRACE_SECONDS + 5,
    )
    spread = spec.placement.topology_spread
    if spread.enabled:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": spread.max_skew,
                "topologyKey": spread.topology_key,
                "whenUnsatisfiable": spread.when_unsatisfiable,
                "labelSelector": {"matchLabels": owner.selector(COMPONENT)},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ]
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": owner.selector(COMPONENT)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": owner.labels(COMPONENT), "annotations": {CHECKSUM_ANNOTATION: checksum}},
            "spec": pod_spec,
        },
    }
    if not spec.autoscaling.enabled:
        deployment_spec["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(owner.name, COMPONENT),
        "spec": deployment_spec,
    }
