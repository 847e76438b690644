"""The managed Redis Cluster: a StatefulSet of shards x (1 + replicas) pods, a headless Service, and a
bootstrap Job that runs `redis-cli --cluster create` once."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders import secrets as keys
from router_operator.builders.connections import generated
from router_operator.builders.context import REDIS_PORT, Context
from router_operator.builders.scripts import MOUNT, script, scripts_volume
from router_operator.builders.service import service_for
from router_operator.owner import digest

COMPONENT = "redis"
BOOTSTRAP_COMPONENT = "redis-bootstrap"


def redis_name(ctx: Context) -> str:
    """StatefulSet and headless Service name; also the host the routers start from."""
    return ctx.owner.child(COMPONENT)


def node_count(ctx: Context) -> int:
    """Pods in the cluster: every shard's primary and its replicas."""
    m = ctx.spec.cache.managed_or_default
    return m.shards * (1 + m.replicas_per_shard)


def node_hosts(ctx: Context) -> list[str]:
    """Stable DNS names of the pods (through the headless Service)."""
    name, ns = redis_name(ctx), ctx.owner.namespace
    return [f"{name}-{i}.{name}.{ns}.svc" for i in range(node_count(ctx))]


def build_headless_service(ctx: Context) -> dict[str, Any]:
    """Per-pod DNS names, published before readiness so the cluster can form."""
    ports = [("redis", REDIS_PORT), ("bus", REDIS_PORT + 10000)]
    return service_for(
        ctx, redis_name(ctx), COMPONENT, ports, clusterIP="None", publishNotReadyAddresses=True
    )


def build_statefulset(ctx: Context) -> dict[str, Any]:
    """Cluster-mode redis-server pods announcing their stable hostnames, each with a volume."""
    m, owner, name = ctx.spec.cache.managed_or_default, ctx.owner, redis_name(ctx)
    auth = pods.secret_env("REDIS_PASSWORD", generated(ctx, keys.REDIS_PASSWORD))
    # The password goes into a file, not the argument list that any process in the pod could read.
    server = (
        'printf "requirepass %s\\nmasterauth %s\\n" "$REDIS_PASSWORD" "$REDIS_PASSWORD" > /tmp/auth.conf && '
        f"exec redis-server /tmp/auth.conf --port {REDIS_PORT} --bind 0.0.0.0 --protected-mode no --dir /data"
        " --appendonly yes --cluster-enabled yes --cluster-config-file /data/nodes.conf"
        " --cluster-node-timeout 5000 --cluster-preferred-endpoint-type hostname"
        f' --cluster-announce-hostname "$POD_NAME.{name}.{owner.namespace}.svc"'
    )
    tmp_volume, tmp_mount = pods.tmp_volume()
    ping = {
        "exec": {"command": ["sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG']}
    }
    container = {
        "name": "redis",
        "image": m.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["sh", "-c", server],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, auth],
        "ports": [
            {"name": "redis", "containerPort": REDIS_PORT},
            {"name": "bus", "containerPort": REDIS_PORT + 10000},
        ],
        "readinessProbe": {**ping, "periodSeconds": 5, "timeoutSeconds": 2},
        "livenessProbe": {**ping, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 4},
        "resources": pods.resources(m.resources),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, tmp_mount],
        "securityContext": pods.container_security(),
    }
    sts: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": owner.metadata(name, COMPONENT),
        "spec": {
            "serviceName": name,
            "replicas": node_count(ctx),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": owner.selector(COMPONENT)},
            "template": {
                "metadata": {"labels": owner.labels(COMPONENT)},
                "spec": pods.pod_spec(ctx.spec.placement, [container], [tmp_volume], fs_group=True),
            },
        },
    }
    pods.data_volume(sts["spec"], str(m.storage), m.storage_class_name, m.ephemeral)
    return sts


def bootstrap_template(ctx: Context) -> dict[str, Any]:
    """The bootstrap Job's pod template: redis-bootstrap.sh with the layout and the image."""
    m = ctx.spec.cache.managed_or_default
    volume, mount = scripts_volume(ctx)
    container = {
        "name": "bootstrap",
        "image": m.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "command": ["sh", f"{MOUNT}/redis-bootstrap.sh"],
        "env": [
            pods.secret_env("REDISCLI_AUTH", generated(ctx, keys.REDIS_PASSWORD)),
            {"name": "REDIS_NODES", "value": " ".join(f"{h}:{REDIS_PORT}" for h in node_hosts(ctx))},
            {"name": "REDIS_REPLICAS", "value": str(m.replicas_per_shard)},
        ],
        "volumeMounts": [mount],
        "securityContext": pods.container_security(),
    }
    return {
        "metadata": {"labels": ctx.owner.labels(BOOTSTRAP_COMPONENT)},
        "spec": pods.pod_spec(ctx.spec.placement, [container], [volume], restartPolicy="OnFailure"),
    }


def bootstrap_name(ctx: Context) -> str:
    """A digest of the pod template: a Job's template is immutable, so a new layout, image or pod
    setting (an operator upgrade that changes every pod spec) gets a new Job, and the old one is
    pruned. The script leaves an existing cluster alone, so a rerun is harmless."""
    return ctx.owner.child(f"redis-bootstrap-{digest(bootstrap_template(ctx), 6)}")


def build_bootstrap_job(ctx: Context) -> dict[str, Any]:
    """Runs redis-bootstrap.sh: waits for every pod, creates the cluster unless it exists."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.owner.metadata(
            bootstrap_name(ctx),
            BOOTSTRAP_COMPONENT,
            {"quantumrouter.dev/script": digest(script("redis-bootstrap.sh"))},
        ),
        "spec": {
            "backoffLimit": 10,
            "activeDeadlineSeconds": 1800,
            "template": bootstrap_template(ctx),
        },
    }
