"""Status from what the cluster reports about the children: pure, level-based, no I/O.

Every condition has a reason from REASONS (documented in docs/operator.md) and a message a person
can act on. `Ready` is the conjunction of the conditions on the request path; training is not on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router_operator.builders import Plan
from router_operator.builders.connections import database_service
from router_operator.builders.context import ROUTER_PORT, Context
from router_operator.builders.ray import head_service_name
from router_operator.builders.redis import redis_name

Observed = Mapping[tuple[str, str], Mapping[str, Any]]

REASONS: dict[str, dict[str, str]] = {
    "SpecValid": {
        "Valid": "the spec passed every check",
        "InvalidSpec": "a field is wrong; the message names it; nothing was created or changed",
        "ReferenceNotFound": "a referenced Secret or ConfigMap does not exist in the namespace",
    },
    "MigrationsSucceeded": {
        "Succeeded": "the migration Job of the current image succeeded",
        "Running": "the migration Job is running; the new image rolls out after it",
        "MigrationFailed": "the migration Job failed; read its logs, fix, then delete the Job to retry",
    },
    "ServiceAvailable": {
        "Available": "at least one router pod is ready behind the Service",
        "NoReadyReplicas": "router pods exist but none is ready (see the pods' readiness probe)",
        "WaitingForMigration": "the router Deployment is created once the first migration succeeded",
        "ScaledToZero": "replicas is 0",
    },
    "CacheReady": {
        "ClusterReady": "every Redis pod is ready and the cluster was created",
        "PodsNotReady": "some Redis pods are not ready",
        "Bootstrapping": "the bootstrap Job is creating the Redis Cluster",
        "BootstrapFailed": "the bootstrap Job failed; read its logs",
        "External": "an external Redis is configured (the operator does not probe it)",
        "InProcess": "cache.enabled is false: each router pod caches in its own memory",
    },
    "DatabaseReady": {
        "Ready": "the primary and every read replica are ready",
        "PrimaryNotReady": "the PostgreSQL primary is not ready",
        "ReplicasNotReady": "some read replicas are not ready (reads fall back to the primary)",
        "ClusterNotReady": "the CloudNativePG Cluster reports fewer ready instances than it should have",
        "External": "an external database is configured (the operator does not probe it)",
    },
    "TrainingReady": {
        "Ready": "the Ray head is ready and the training CronJob is scheduled",
        "RayNotReady": "the Ray head is not ready",
        "ExternalRay": "training runs on an existing Ray cluster",
        "Disabled": "training.enabled is false",
    },
}
REQUEST_PATH = ("SpecValid", "MigrationsSucceeded", "ServiceAvailable", "CacheReady", "DatabaseReady")
FAILURE_REASONS = frozenset({"InvalidSpec", "ReferenceNotFound", "MigrationFailed", "BootstrapFailed"})
# Conditions that are fine though not "ready" in the usual sense.
OK_REASONS = frozenset({"External", "InProcess", "ExternalRay", "Disabled", "ScaledToZero"})


@dataclass(frozen=True)
class Cond:
    """One condition before timestamps are attached."""

    type: str
    ok: bool
    reason: str
    message: str


def is_ready(rd: Mapping[str, Any]) -> bool:
    """Whether a RouterDeployment reports Ready=True for its current spec (what clients wait for)."""
    status = rd.get("status") or {}
    if status.get("observedGeneration") != rd["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def job_state(job: Mapping[str, Any] | None) -> str:
    """missing, running, succeeded or failed."""
    if job is None:
        return "missing"
    status = job.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if c.get("status") == "True" and c.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return "succeeded" if (status.get("succeeded") or 0) >= 1 else "running"


def ready_count(obj: Mapping[str, Any] | None) -> int:
    """readyReplicas of a Deployment or StatefulSet (0 when missing)."""
    return int(((obj or {}).get("status") or {}).get("readyReplicas") or 0)


def _get(observed: Observed, child: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if child is None:
        return None
    return observed.get((child["kind"], child["metadata"]["name"]))


def _find(plan: Plan, kind: str, component: str) -> Mapping[str, Any] | None:
    for child in plan.children:
        labels = child["metadata"]["labels"]
        if child["kind"] == kind and labels.get("app.kubernetes.io/component") == component:
            return child
    return None


def migration_condition(plan: Plan, observed: Observed) -> Cond:
    """Whether the current image's migration Job succeeded."""
    name = plan.migration["metadata"]["name"]
    state = job_state(_get(observed, plan.migration))
    if state == "succeeded":
        return Cond("MigrationsSucceeded", True, "Succeeded", f"Job {name} succeeded")
    if state == "failed":
        return Cond(
            "MigrationsSucceeded",
            False,
            "MigrationFailed",
            f"Job {name} failed: `kubectl logs job/{name}`; delete the Job to retry",
        )
    return Cond("MigrationsSucceeded", False, "Running", f"Job {name} is migrating the database")


def service_condition(ctx: Context, plan: Plan, observed: Observed) -> Cond:
    """Whether the router Service has ready pods."""
    deployment = _get(observed, plan.deployment)
    if deployment is None:
        return Cond(
            "ServiceAvailable",
            False,
            "WaitingForMigration",
            "the router Deployment is created after the first migration Job succeeds",
        )
    if ctx.spec.min_replicas == 0 and not ctx.spec.autoscaling.enabled:
        return Cond("ServiceAvailable", True, "ScaledToZero", "spec.replicas is 0")
    ready = ready_count(deployment)
    if ready >= 1:
        return Cond("ServiceAvailable", True, "Available", f"{ready} router pod(s) ready")
    return Cond(
        "ServiceAvailable",
        False,
        "NoReadyReplicas",
        f"no router pod is ready yet: `kubectl describe pods -l app.kubernetes.io/instance={ctx.owner.name}`",
    )


def cache_condition(ctx: Context, plan: Plan, observed: Observed) -> Cond:
    """Whether the managed Redis Cluster is up."""
    mode = ctx.spec.cache.mode
    if mode == "none":
        return Cond("CacheReady", True, "InProcess", "cache.enabled is false; each pod caches in memory")
    if mode == "external":
        return Cond("CacheReady", True, "External", "using the Redis URL from the referenced Secret")
    sts = _get(observed, _find(plan, "StatefulSet", "redis"))
    want = int(((sts or {}).get("spec") or {}).get("replicas") or 0)
    ready = ready_count(sts)
    if ready < want or sts is None:
        return Cond("CacheReady", False, "PodsNotReady", f"{ready}/{want} Redis pods ready")
    job = _find(plan, "Job", "redis-bootstrap")
    state = job_state(_get(observed, job))
    name = job["metadata"]["name"] if job else "?"
    if state == "failed":
        return Cond("CacheReady", False, "BootstrapFailed", f"Job {name} failed: `kubectl logs job/{name}`")
    if state != "succeeded":
        return Cond("CacheReady", False, "Bootstrapping", f"Job {name} is creating the cluster")
    return Cond("CacheReady", True, "ClusterReady", f"{ready} Redis pods ready, cluster created")


def database_condition(ctx: Context, plan: Plan, observed: Observed) -> Cond:
    """Whether the managed PostgreSQL primary and replicas are ready."""
    kind = ctx.database_kind
    if kind == "External":
        return Cond("DatabaseReady", True, "External", "using the database URLs from the referenced Secrets")
    if kind == "CloudNativePG":
        cluster = _get(observed, _find(plan, "Cluster", "database-primary"))
        want = int(((cluster or {}).get("spec") or {}).get("instances") or 1)
        ready = int(((cluster or {}).get("status") or {}).get("readyInstances") or 0)
        if ready >= want:
            return Cond("DatabaseReady", True, "Ready", f"CloudNativePG: {ready}/{want} instances ready")
        return Cond(
            "DatabaseReady", False, "ClusterNotReady", f"CloudNativePG: {ready}/{want} instances ready"
        )
    primary = _get(observed, _find(plan, "StatefulSet", "database-primary"))
    if ready_count(primary) < 1:
        return Cond("DatabaseReady", False, "PrimaryNotReady", "the PostgreSQL primary pod is not ready")
    replicas = _get(observed, _find(plan, "StatefulSet", "database-replica"))
    want = ctx.spec.database.managed_or_default.replicas
    if ready_count(replicas) < want:
        return Cond(
            "DatabaseReady", False, "ReplicasNotReady", f"{ready_count(replicas)}/{want} read replicas ready"
        )
    return Cond("DatabaseReady", True, "Ready", f"primary and {want} read replica(s) ready")


def training_condition(ctx: Context, plan: Plan, observed: Observed) -> Cond:
    """Whether scheduled training has a Ray cluster to run on."""
    kind = ctx.ray_kind
    if kind == "None":
        return Cond("TrainingReady", True, "Disabled", "training.enabled is false")
    if kind == "External":
        return Cond("TrainingReady", True, "ExternalRay", f"training on {ctx.spec.training.ray_address}")
    if kind == "KubeRay":
        cluster = _get(observed, _find(plan, "RayCluster", "ray-head"))
        state = ((cluster or {}).get("status") or {}).get("state")
        if state == "ready":
            return Cond("TrainingReady", True, "Ready", "KubeRay RayCluster ready; CronJob scheduled")
        return Cond("TrainingReady", False, "RayNotReady", f"KubeRay RayCluster state: {state or 'unknown'}")
    if ready_count(_get(observed, _find(plan, "Deployment", "ray-head"))) < 1:
        return Cond("TrainingReady", False, "RayNotReady", "the Ray head pod is not ready")
    return Cond("TrainingReady", True, "Ready", f"Ray head ready; schedule {ctx.spec.training.schedule}")


def conditions_for(ctx: Context, plan: Plan, observed: Observed) -> list[Cond]:
    """Every condition of a valid spec, `Ready` first."""
    parts = [
        Cond("SpecValid", True, "Valid", "spec is valid"),
        migration_condition(plan, observed),
        service_condition(ctx, plan, observed),
        cache_condition(ctx, plan, observed),
        database_condition(ctx, plan, observed),
        training_condition(ctx, plan, observed),
    ]
    return [ready_condition(parts), *parts]


def invalid_conditions(reason: str, errors: list[str]) -> list[Cond]:
    """Conditions of a spec that was refused: SpecValid false, Ready false, the rest untouched."""
    cond = Cond("SpecValid", False, reason, "; ".join(errors))
    return [ready_condition([cond]), cond]


def ready_condition(parts: list[Cond]) -> Cond:
    """Ready when every request-path condition is; otherwise the first that is not, with its reason."""
    for c in parts:
        if c.type in REQUEST_PATH and not c.ok:
            return Cond("Ready", False, c.reason, f"{c.type}: {c.message}")
    return Cond("Ready", True, "Ready", "the router stack is serving")


def phase(conds: list[Cond]) -> tuple[str, str]:
    """(phase, phaseReason): Ready, Failed (needs a person), Degraded (serving, not whole), Progressing."""
    by_type = {c.type: c for c in conds}
    ready = by_type["Ready"]
    if ready.ok:
        return "Ready", "Ready"
    if ready.reason in FAILURE_REASONS:
        return "Failed", ready.reason
    service = by_type.get("ServiceAvailable")
    if service is not None and service.ok:
        return "Degraded", ready.reason
    return "Progressing", ready.reason


def render_conditions(
    conds: list[Cond], previous: list[Mapping[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """Kubernetes-style conditions; lastTransitionTime moves only when a status flips."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in conds:
        status = "True" if c.ok else "False"
        old = before.get(c.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else now
        out.append(
            {
                "type": c.type,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    # Conditions a refused spec does not recompute keep their last known value.
    out += [dict(c) for t, c in before.items() if t not in {x.type for x in conds}]
    return out


def endpoints(ctx: Context) -> dict[str, str]:
    """Where the router, cache, database and Ray are reached inside the cluster."""
    ns = ctx.owner.namespace
    out = {"router": f"http://{ctx.owner.name}.{ns}.svc:{ROUTER_PORT}"}
    if ctx.spec.cache.mode == "managed":
        out["redis"] = f"{redis_name(ctx)}.{ns}.svc:6379"
    if ctx.database_kind != "External":
        out["databaseReadWrite"] = f"{database_service(ctx, 'rw')}.{ns}.svc:5432"
        if ctx.spec.database.managed_or_default.replicas > 0:
            out["databaseReadOnly"] = f"{database_service(ctx, 'ro')}.{ns}.svc:5432"
    if ctx.ray_kind in ("Deployment", "KubeRay"):
        out["ray"] = f"ray://{head_service_name(ctx)}.{ns}.svc:10001"
    return out


def workload_status(ctx: Context, plan: Plan, observed: Observed) -> dict[str, Any]:
    """replicas, readyReplicas, updatedReplicas and the selector the scale subresource reports."""
    status = (_get(observed, plan.deployment) or {}).get("status") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(ctx.owner.selector("router").items()))
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "updatedReplicas": int(status.get("updatedReplicas") or 0),
        "selector": selector,
    }
