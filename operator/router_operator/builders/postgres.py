"""Managed PostgreSQL: a primary StatefulSet and a streaming-replica StatefulSet with `-rw` and `-ro`
Services, or a CloudNativePG Cluster (which creates Services of the same names)."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders import secrets as keys
from router_operator.builders.connections import database_replicas, database_service, generated
from router_operator.builders.context import DATABASE_NAME, DATABASE_USER, POSTGRES_PORT, Context
from router_operator.builders.scripts import MOUNT, script, scripts_volume
from router_operator.builders.service import service_for
from router_operator.owner import digest

PRIMARY = "database-primary"
REPLICA = "database-replica"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: a fresh volume's root may hold lost+found, and initdb wants an empty directory.
PGDATA = f"{DATA_MOUNT}/pgdata"


def primary_name(ctx: Context) -> str:
    """The primary StatefulSet (and, for CloudNativePG, the Cluster)."""
    return ctx.owner.child("db")


def replica_name(ctx: Context) -> str:
    """The replica StatefulSet."""
    return ctx.owner.child("db-replica")


def build_services(ctx: Context) -> list[dict[str, Any]]:
    """`-rw` to the primary, `-ro` to the replicas, and the headless Service the StatefulSets need."""

    def service(name: str, component: str, headless: bool = False) -> dict[str, Any]:
        extra = {"clusterIP": "None"} if headless else {}
        return service_for(ctx, name, component, [("postgres", POSTGRES_PORT)], **extra)

    out = [
        service(database_service(ctx, "rw"), PRIMARY),
        service(primary_name(ctx), PRIMARY, headless=True),
    ]
    if database_replicas(ctx) > 0:
        out.append(service(database_service(ctx, "ro"), REPLICA))
        out.append(service(replica_name(ctx), REPLICA, headless=True))
    return out


def _statefulset(
    ctx: Context, name: str, component: str, replicas: int, script_name: str, env: list[dict[str, Any]]
) -> dict[str, Any]:
    m, owner = ctx.spec.database.managed_or_default, ctx.owner
    volume, mount = scripts_volume(ctx)
    tmp_volume, tmp_mount = pods.tmp_volume()
    ready = {
        "exec": {
            "command": [
                "sh",
                "-c",
                f"pg_isready -q -h 127.0.0.1 -p {POSTGRES_PORT} "
                '|| "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/pg_isready" '
                f"-q -h 127.0.0.1 -p {POSTGRES_PORT}",
            ]
        }
    }
    container = {
        "name": "postgres",
        "image": m.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["sh", f"{MOUNT}/{script_name}"],
        "env": [{"name": "PGDATA", "value": PGDATA}, {"name": "PGPORT", "value": str(POSTGRES_PORT)}, *env],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "readinessProbe": {**ready, "periodSeconds": 5, "timeoutSeconds": 3},
        # A replica's first clone can take long: liveness starts only once it answered.
        "startupProbe": {**ready, "periodSeconds": 10, "failureThreshold": 360},
        "livenessProbe": {**ready, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 4},
        "resources": pods.resources(m.resources),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            mount,
            tmp_mount,
            {"name": "run", "mountPath": "/var/run/postgresql"},
        ],
        "securityContext": pods.container_security(),
    }
    sts: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": owner.metadata(name, component),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": owner.selector(component)},
            "template": {
                "metadata": {
                    "labels": owner.labels(component),
                    "annotations": {"quantumrouter.dev/script": digest(script(script_name))},
                },
                "spec": pods.pod_spec(
                    ctx.spec.placement,
                    [container],
                    [volume, tmp_volume, {"name": "run", "emptyDir": {}}],
                    fs_group=True,
                    terminationGracePeriodSeconds=60,
                ),
            },
        },
    }
    pods.data_volume(sts["spec"], str(m.storage), m.storage_class_name, m.ephemeral)
    return sts


def build_primary(ctx: Context) -> dict[str, Any]:
    """One primary pod; its script runs initdb and creates the router's role and database once."""
    env = [
        pods.secret_env("SUPERUSER_PASSWORD", generated(ctx, keys.SUPERUSER_PASSWORD)),
        {"name": "DATABASE_USER", "value": DATABASE_USER},
        {"name": "DATABASE_NAME", "value": DATABASE_NAME},
        pods.secret_env("DATABASE_PASSWORD", generated(ctx, keys.DATABASE_PASSWORD)),
        pods.secret_env("REPLICATION_PASSWORD", generated(ctx, keys.REPLICATION_PASSWORD)),
    ]
    return _statefulset(ctx, primary_name(ctx), PRIMARY, 1, "postgres-primary.sh", env)


def build_replicas(ctx: Context) -> dict[str, Any] | None:
    """Hot standbys cloned from the primary with pg_basebackup -R; None without replicas."""
    if database_replicas(ctx) == 0:
        return None
    env = [
        {"name": "PRIMARY_HOST", "value": database_service(ctx, "rw")},
        {"name": "PRIMARY_PORT", "value": str(POSTGRES_PORT)},
        pods.secret_env("REPLICATION_PASSWORD", generated(ctx, keys.REPLICATION_PASSWORD)),
    ]
    return _statefulset(ctx, replica_name(ctx), REPLICA, database_replicas(ctx), "postgres-replica.sh", env)


def build_cnpg_cluster(ctx: Context) -> dict[str, Any]:
    """A CloudNativePG Cluster of 1 + replicas instances; it creates `<name>-db-rw`/`-ro` and `-app`."""
    m = ctx.spec.database.managed_or_default
    storage: dict[str, Any] = {"size": str(m.storage)}
    if m.storage_class_name:
        storage["storageClass"] = m.storage_class_name
    spec: dict[str, Any] = {
        "instances": 1 + m.replicas,
        "storage": storage,
        "bootstrap": {"initdb": {"database": "app", "owner": "app"}},
    }
    if m.resources.requests or m.resources.limits:
        spec["resources"] = pods.resources(m.resources)
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": ctx.owner.metadata(primary_name(ctx), PRIMARY),
        "spec": spec,
    }
