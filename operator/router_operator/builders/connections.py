"""Environment that connects a router, migration or training pod to the database and the cache."""

from __future__ import annotations

from typing import Any

from router_operator.builders import secrets as keys
from router_operator.builders.context import (
    CNPG_DATABASE,
    DATABASE_NAME,
    DATABASE_USER,
    POSTGRES_PORT,
    REDIS_PORT,
    Context,
)
from router_operator.builders.pods import secret_env
from router_operator.spec import SecretKeyRef


def generated(ctx: Context, key: str) -> SecretKeyRef:
    """A key of the generated Secret."""
    return SecretKeyRef(name=keys.secret_name(ctx), key=key)


def database_service(ctx: Context, role: str) -> str:
    """Host of the managed database's `rw` or `ro` Service (same names for both providers)."""
    return ctx.owner.child(f"db-{role}")


def database_replicas(ctx: Context) -> int:
    """Read replicas of the managed database."""
    return ctx.spec.database.managed_or_default.replicas


def database_env(ctx: Context) -> list[dict[str, Any]]:
    """QR_DATABASE_URL and QR_DATABASE_REPLICA_URLS, with passwords only as Secret references.

    Kubernetes expands $(VAR) from variables defined earlier in the list, so URLs are composed in the
    pod and never stored in the ConfigMap.
    """
    kind = ctx.database_kind
    if kind == "External":
        ext = ctx.spec.database.external
        assert ext is not None
        env = [secret_env("QR_DATABASE_URL", ext.primary_url_secret_ref)]
        if ext.replica_url_secret_ref is not None:
            env.append(secret_env("DATABASE_REPLICA_URL", ext.replica_url_secret_ref))
            env.append({"name": "QR_DATABASE_REPLICA_URLS", "value": '["$(DATABASE_REPLICA_URL)"]'})
        return env
    if kind == "CloudNativePG":
        # CloudNativePG's generated application Secret: <cluster>-app with username and password.
        app = ctx.owner.child("db-app")
        env = [
            secret_env("DATABASE_USER", SecretKeyRef(name=app, key="username")),
            secret_env("DATABASE_PASSWORD", SecretKeyRef(name=app, key="password")),
        ]
        database = CNPG_DATABASE
    else:
        env = [
            {"name": "DATABASE_USER", "value": DATABASE_USER},
            secret_env("DATABASE_PASSWORD", generated(ctx, keys.DATABASE_PASSWORD)),
        ]
        database = DATABASE_NAME

    def url(role: str) -> str:
        host = database_service(ctx, role)
        return f"postgresql+asyncpg://$(DATABASE_USER):$(DATABASE_PASSWORD)@{host}:{POSTGRES_PORT}/{database}"

    env.append({"name": "QR_DATABASE_URL", "value": url("rw")})
    if database_replicas(ctx) > 0:
        env.append({"name": "QR_DATABASE_REPLICA_URLS", "value": f'["{url("ro")}"]'})
    return env


def cache_env(ctx: Context) -> list[dict[str, Any]]:
    """QR_REDIS_URL for a managed or external cache; nothing when the cache is in-process."""
    cache = ctx.spec.cache
    if cache.mode == "external":
        assert cache.external is not None
        return [secret_env("QR_REDIS_URL", cache.external.url_secret_ref)]
    if cache.mode == "managed":
        host = ctx.owner.child("redis")
        return [
            secret_env("REDIS_PASSWORD", generated(ctx, keys.REDIS_PASSWORD)),
            {"name": "QR_REDIS_URL", "value": f"redis://:$(REDIS_PASSWORD)@{host}:{REDIS_PORT}/0"},
        ]
    return []


def router_env(ctx: Context) -> list[dict[str, Any]]:
    """Everything secret a router-image pod needs: signing key, admin password, database, cache, keys."""
    env = [
        secret_env("QR_JWT_SECRET", generated(ctx, keys.JWT_SECRET)),
        secret_env("QR_ADMIN_PASSWORD", generated(ctx, keys.ADMIN_PASSWORD)),
        *database_env(ctx),
        *cache_env(ctx),
    ]
    env += [secret_env(k.env, k.secret_key_ref) for k in ctx.spec.catalog.provider_keys]
    return env
