"""One level-based reconcile: validate, build, apply, observe, and compute the status to write."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router_operator import KIND
from router_operator.builders import Context, Facts, Plan, plan
from router_operator.kube import PLURALS, Kube, KubeError
from router_operator.owner import OWNER_LABEL, Owner
from router_operator.spec import RouterDeploymentSpec, SecretKeyRef
from router_operator.status import (
    Cond,
    conditions_for,
    endpoints,
    invalid_conditions,
    job_state,
    phase,
    render_conditions,
    workload_status,
)
from router_operator.validation import InvalidSpec, MissingReference, validate

log = logging.getLogger(__name__)
Key = tuple[str, str]
# Kinds pruned when the spec no longer wants them (never the generated Secret: it holds the data's keys).
PRUNABLE = [k for k in PLURALS if k[1] not in ("Secret", "Event", "CustomResourceDefinition", KIND)]
CNPG_CRD = "clusters.postgresql.cnpg.io"
KUBERAY_CRD = "rayclusters.ray.io"


@dataclass
class Outcome:
    """What a reconcile found: the status to write and the condition changes worth an Event."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)


class ApplyFailed(Exception):
    """The API server refused a child (an immutable field, a quota, an admission webhook)."""


def discover(kube: Kube) -> Facts:
    """Which optional operators' CRDs are installed."""
    return Facts(cloudnativepg=kube.crd_established(CNPG_CRD), kuberay=kube.crd_established(KUBERAY_CRD))


def secret_refs(spec: RouterDeploymentSpec) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key the spec points at, with the field that names it."""
    refs = [(f"spec.catalog.providerKeys[{k.env}]", k.secret_key_ref) for k in spec.catalog.provider_keys]
    if spec.cache.external is not None:
        refs.append(("spec.cache.external.urlSecretRef", spec.cache.external.url_secret_ref))
    ext = spec.database.external
    if ext is not None:
        refs.append(("spec.database.external.primaryUrlSecretRef", ext.primary_url_secret_ref))
        if ext.replica_url_secret_ref is not None:
            refs.append(("spec.database.external.replicaUrlSecretRef", ext.replica_url_secret_ref))
    return refs


def resolve_references(kube: Kube, ctx: Context) -> str | None:
    """Check referenced Secrets and the catalog ConfigMap; returns the referenced catalog's text."""
    errors = []
    for where, ref in secret_refs(ctx.spec):
        secret = kube.get("v1", "Secret", ctx.owner.namespace, ref.name)
        if secret is None:
            errors.append(f"{where}: Secret {ref.name} not found")
        elif ref.key not in (secret.get("data") or {}):
            errors.append(f"{where}: Secret {ref.name} has no key {ref.key}")
    catalog = None
    cm_ref = ctx.spec.catalog.config_map_ref
    if cm_ref is not None:
        cm = kube.get("v1", "ConfigMap", ctx.owner.namespace, cm_ref.name)
        catalog = ((cm or {}).get("data") or {}).get(cm_ref.key)
        if catalog is None:
            errors.append(
                f"spec.catalog.configMapRef: ConfigMap {cm_ref.name} with key {cm_ref.key} not found"
            )
    if errors:
        raise MissingReference(errors)
    return catalog


def _apply(kube: Kube, obj: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return kube.apply(obj)
    except KubeError as exc:
        if 400 <= exc.status < 500 and exc.status not in (408, 409, 429):
            raise ApplyFailed(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}") from exc
        raise


def rollout(kube: Kube, p: Plan, migrated: bool) -> dict[str, Any] | None:
    """Apply the router Deployment; before the new image's migration succeeded, keep the running image."""
    if migrated:
        return _apply(kube, p.deployment)
    meta = p.deployment["metadata"]
    live = kube.get("apps/v1", "Deployment", meta["namespace"], meta["name"])
    if live is None:
        return None  # first install: no router pod starts before the schema exists
    held = copy.deepcopy(p.deployment)
    running = running_images(live)
    for container in held["spec"]["template"]["spec"]["containers"]:
        container["image"] = running.get(container["name"], container["image"])
    return _apply(kube, held)


def apply_plan(kube: Kube, p: Plan) -> dict[Key, dict[str, Any]]:
    """Create the Secret if missing, apply every child, gate the Deployment on the migration."""
    observed: dict[Key, dict[str, Any]] = {}
    kube.create(p.secret)
    for child in p.children:
        observed[(child["kind"], child["metadata"]["name"])] = _apply(kube, child)
    job = _apply(kube, p.migration)
    observed[("Job", p.migration["metadata"]["name"])] = job
    deployment = rollout(kube, p, job_state(job) == "succeeded")
    if deployment is not None:
        observed[("Deployment", p.deployment["metadata"]["name"])] = deployment
    return observed


# Kinds whose status the conditions read; everything else only has to exist.
STATUS_KINDS = frozenset({"Deployment", "StatefulSet", "Job", "Cluster", "RayCluster"})


def observe_plan(kube: Kube, p: Plan) -> dict[Key, dict[str, Any]] | None:
    """Read the status-bearing children without applying anything (a cheaper look while a stack comes
    up); None when one is missing or the Deployment waits for its migration, so a full apply is due."""
    observed: dict[Key, dict[str, Any]] = {}
    for child in p.objects:
        if child["kind"] not in STATUS_KINDS:
            continue
        meta = child["metadata"]
        live = kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"])
        if live is None:
            return None
        observed[(child["kind"], meta["name"])] = live
    deployment = observed[("Deployment", p.deployment["metadata"]["name"])]
    if running_images(deployment) != running_images(p.deployment):
        return None  # a rollout waits for its migration: apply, which rolls it once the Job succeeded
    return observed


def running_images(deployment: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> image of a Deployment's pod template."""
    return {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}


def prune(kube: Kube, owner: Owner, p: Plan, facts: Facts) -> list[str]:
    """Delete children this RouterDeployment owns that the plan no longer wants; returns what went."""
    gone = []
    for api_version, kind in PRUNABLE:
        if (kind == "Cluster" and not facts.cloudnativepg) or (kind == "RayCluster" and not facts.kuberay):
            continue
        for obj in kube.list_objects(api_version, kind, owner.namespace, f"{OWNER_LABEL}={owner.name}"):
            meta = obj["metadata"]
            owned = any(ref.get("uid") == owner.uid for ref in meta.get("ownerReferences") or [])
            if (
                owned
                and not p.wanted(kind, meta["name"])
                and kube.delete(api_version, kind, owner.namespace, meta["name"])
            ):
                gone.append(f"{kind}/{meta['name']}")
    return gone


def transitions(previous: list[Mapping[str, Any]], conds: list[Cond]) -> list[tuple[str, str, str]]:
    """(type, reason, message) Events for conditions whose status changed (Normal or Warning)."""
    before = {c.get("type"): c.get("status") for c in previous}
    events = []
    for c in conds:
        status = "True" if c.ok else "False"
        if before.get(c.type) != status:
            events.append(("Normal" if c.ok else "Warning", c.reason, f"{c.type}={status}: {c.message}"))
    return events


def failed(previous: Mapping[str, Any], reason: str, conds: list[Cond], generation: int, now: str) -> Outcome:
    """A reconcile that changed nothing: phase Failed, the given conditions over the previous ones, the
    rest of the previous status kept."""
    old_conditions = list(previous.get("conditions") or [])
    status = {
        **previous,
        "phase": "Failed",
        "phaseReason": reason,
        "observedGeneration": generation,
        "conditions": render_conditions(conds, old_conditions, generation, now),
    }
    return Outcome(status, transitions(old_conditions, conds))


def reconcile(
    kube: Kube,
    body: Mapping[str, Any],
    facts: Facts,
    now: str,
    prune_children: bool,
    observe_only: bool = False,
) -> Outcome:
    """Bring the children in line with the spec and report how they are. `observe_only` reads the
    children's status instead of applying them, falling back to a full apply when one is missing."""
    meta, previous = body["metadata"], dict(body.get("status") or {})
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    generation = int(meta.get("generation") or 0)
    old_conditions = list(previous.get("conditions") or [])
    try:
        ctx = Context(owner, validate(owner.name, dict(body.get("spec") or {})), facts)
        catalog = resolve_references(kube, ctx)
    except InvalidSpec as exc:
        return failed(previous, exc.reason, invalid_conditions(exc.reason, exc.errors), generation, now)
    p = plan(ctx, catalog)
    try:
        observed = (observe_plan(kube, p) if observe_only and not prune_children else None) or apply_plan(
            kube, p
        )
    except ApplyFailed as exc:
        return failed(
            previous, "ApplyFailed", [Cond("Ready", False, "ApplyFailed", str(exc))], generation, now
        )
    if prune_children:
        for gone in prune(kube, owner, p, facts):
            log.info("pruned %s of %s/%s", gone, owner.namespace, owner.name)
    conds = conditions_for(ctx, p, observed)
    current_phase, reason = phase(conds)
    status = {
        "phase": current_phase,
        "phaseReason": reason,
        "observedGeneration": generation,
        **workload_status(ctx, p, observed),
        "endpoints": endpoints(ctx),
        "conditions": render_conditions(conds, old_conditions, generation, now),
    }
    if "policyVersion" in previous:
        status["policyVersion"] = previous["policyVersion"]
    return Outcome(status, transitions(old_conditions, conds))
