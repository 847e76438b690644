"""The router's ConfigMap: settings as QR_* variables and the model catalog."""

from __future__ import annotations

import json
from typing import Any

import yaml

from router_operator.builders.context import ROUTER_PORT, Context
from router_operator.owner import digest

CATALOG_DIR = "/etc/quantum-router/catalog"
CATALOG_KEY = "catalog.yaml"
# Seconds a terminating pod keeps serving after the endpoints controller saw it go, and then the
# time uvicorn gives in-flight requests and streams to finish.
PRESTOP_SLEEP_SECONDS = 5
SHUTDOWN_GRACE_SECONDS = 30


def config_name(ctx: Context) -> str:
    """Name of the router ConfigMap."""
    return ctx.owner.child("config")


def router_settings(ctx: Context) -> dict[str, str]:
    """QR_* settings for the router (no secrets: those come from Secrets as env references)."""
    spec, routing = ctx.spec, ctx.spec.routing
    values: dict[str, str] = {
        "QR_ENVIRONMENT": "production",
        "QR_HOST": "0.0.0.0",
        "QR_PORT": str(ROUTER_PORT),
        "QR_EPSILON": str(routing.epsilon),
        "QR_COMPLEX_VARIATIONS": str(routing.complex_variations),
        "QR_MAX_VARIATIONS": str(routing.max_variations),
        "QR_COMPLEX_TASK_TYPES": json.dumps(list(routing.complex_task_types)),
        "QR_SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
    }
    if routing.cost_weight is not None:
        values["QR_COST_WEIGHT"] = str(routing.cost_weight)
    if spec.catalog.inline is not None or spec.catalog.config_map_ref is not None:
        values["QR_CATALOG_FILE"] = f"{CATALOG_DIR}/{CATALOG_KEY}"
    if spec.cache.mode == "external":
        assert spec.cache.external is not None
        values["QR_REDIS_CLUSTER"] = "true" if spec.cache.external.cluster else "false"
    elif spec.cache.mode == "managed":
        values["QR_REDIS_CLUSTER"] = "true"
    values.update(spec.settings)
    return values


def build_config_map(ctx: Context) -> dict[str, Any]:
    """The ConfigMap: settings, plus the inline catalog when the spec has one."""
    data = router_settings(ctx)
    if ctx.spec.catalog.inline is not None:
        data[CATALOG_KEY] = yaml.safe_dump(ctx.spec.catalog.inline, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.owner.metadata(config_name(ctx), "router"),
        "data": data,
    }


def config_checksum(config_map: dict[str, Any], external_catalog: str | None = None) -> str:
    """Checksum of what the pods read at start; a change of it rolls the router pods."""
    return digest({"data": config_map["data"], "catalog": external_catalog}, length=16)
