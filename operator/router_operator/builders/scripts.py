"""The shell scripts that run inside Redis and PostgreSQL pods, shipped as package data."""

from __future__ import annotations

from importlib import resources
from typing import Any

from router_operator.builders.context import Context

NAMES = ("redis-bootstrap.sh", "postgres-primary.sh", "postgres-replica.sh")
MOUNT = "/opt/quantum-router/scripts"


def script(name: str) -> str:
    """The text of one script."""
    return resources.files("router_operator").joinpath("scripts", name).read_text()


def scripts_name(ctx: Context) -> str:
    """Name of the scripts ConfigMap."""
    return ctx.owner.child("scripts")


def build_scripts_config_map(ctx: Context) -> dict[str, Any]:
    """A ConfigMap holding every script; pods mount it read-only and run one with sh."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.owner.metadata(scripts_name(ctx), "scripts"),
        "data": {name: script(name) for name in NAMES},
    }


def scripts_volume(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of the scripts ConfigMap."""
    volume = {"name": "scripts", "configMap": {"name": scripts_name(ctx), "defaultMode": 0o555}}
    return volume, {"name": "scripts", "mountPath": MOUNT, "readOnly": True}
