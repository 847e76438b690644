"""The generated Secret: signing key and passwords, created once and never rotated by a reconcile."""

from __future__ import annotations

import secrets
from typing import Any

from router_operator.builders.context import Context

# Keys of the generated Secret. Hex values: safe inside URLs without escaping.
JWT_SECRET = "jwt-secret"
ADMIN_PASSWORD = "admin-password"
DATABASE_PASSWORD = "database-password"
REPLICATION_PASSWORD = "replication-password"
SUPERUSER_PASSWORD = "superuser-password"
REDIS_PASSWORD = "redis-password"
KEYS = (
    JWT_SECRET,
    ADMIN_PASSWORD,
    DATABASE_PASSWORD,
    REPLICATION_PASSWORD,
    SUPERUSER_PASSWORD,
    REDIS_PASSWORD,
)


def secret_name(ctx: Context) -> str:
    """Name of the generated Secret."""
    return ctx.owner.child("secrets")


def build_secret(ctx: Context, token_hex: Any = secrets.token_hex) -> dict[str, Any]:
    """A new Secret with fresh random values; the operator creates it only when it does not exist."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ctx.owner.metadata(secret_name(ctx), "secrets"),
        "type": "Opaque",
        "stringData": {key: token_hex(32) for key in KEYS},
    }
