"""Pure manifest builders, one module per child kind; `plan` assembles what one RouterDeployment wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router_operator.builders import (
    autoscaler,
    config,
    disruption,
    migration,
    postgres,
    ray,
    redis,
    router,
    scripts,
    secrets,
    service,
    training,
)
from router_operator.builders.context import Context, Facts

__all__ = ["Context", "Facts", "Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """The children one RouterDeployment wants, in the order they are applied.

    `children` are server-side applied every reconcile; `secret` is created only when missing (its
    values are generated once); `migration` must succeed before `deployment` rolls out a new image.
    """

    secret: dict[str, Any]
    children: list[dict[str, Any]]
    migration: dict[str, Any]
    deployment: dict[str, Any]

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Every object of the plan."""
        return [self.secret, *self.children, self.migration, self.deployment]

    def wanted(self, kind: str, name: str) -> bool:
        """Whether a child of this kind and name belongs to the plan (everything else is pruned)."""
        return any(o["kind"] == kind and o["metadata"]["name"] == name for o in self.objects)


def _cache(ctx: Context) -> list[dict[str, Any] | None]:
    if ctx.spec.cache.mode != "managed":
        return []
    return [redis.build_headless_service(ctx), redis.build_statefulset(ctx), redis.build_bootstrap_job(ctx)]


def _database(ctx: Context) -> list[dict[str, Any] | None]:
    kind = ctx.database_kind
    if kind == "CloudNativePG":
        return [postgres.build_cnpg_cluster(ctx)]
    if kind == "StatefulSet":
        return [*postgres.build_services(ctx), postgres.build_primary(ctx), postgres.build_replicas(ctx)]
    return []


def _training(ctx: Context) -> list[dict[str, Any] | None]:
    kind = ctx.ray_kind
    cluster: list[dict[str, Any] | None] = []
    if kind == "Deployment":
        cluster = [ray.build_head_service(ctx), ray.build_head(ctx), ray.build_workers(ctx)]
    elif kind == "KubeRay":
        cluster = [ray.build_kuberay_cluster(ctx)]
    return [*cluster, training.build_cronjob(ctx)]


def plan(ctx: Context, external_catalog: str | None = None) -> Plan:
    """Every child of the stack for this spec; `external_catalog` is the referenced catalog's text."""
    config_map = config.build_config_map(ctx)
    checksum = config.config_checksum(config_map, external_catalog)
    data_children = [*_cache(ctx), *_database(ctx)]
    uses_scripts = ctx.spec.cache.mode == "managed" or ctx.database_kind == "StatefulSet"
    candidates: list[dict[str, Any] | None] = [
        config_map,
        scripts.build_scripts_config_map(ctx) if uses_scripts else None,
        *data_children,
        service.build_service(ctx),
        disruption.build_pdb(ctx),
        autoscaler.build_hpa(ctx),
        *_training(ctx),
    ]
    children = [c for c in candidates if c is not None]
    secret = secrets.build_secret(ctx)
    job = migration.build_migration_job(ctx)
    deployment = router.build_deployment(ctx, checksum)
    return Plan(secret=secret, children=children, migration=job, deployment=deployment)
