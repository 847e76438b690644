"""Pieces every pod template of the stack shares: placement, security context, resources, env refs."""

from __future__ import annotations

from typing import Any

from router_operator.spec import Placement, Resources, SecretKeyRef

# A non-root user that exists in every image we build (images/); the UID is what matters to Kubernetes.
RUN_AS_USER = 10001


def resources(res: Resources) -> dict[str, Any]:
    """The container resources block, empty parts left out."""
    out: dict[str, Any] = {}
    if res.requests:
        out["requests"] = {k: str(v) for k, v in res.requests.items()}
    if res.limits:
        out["limits"] = {k: str(v) for k, v in res.limits.items()}
    return out


def container_security() -> dict[str, Any]:
    """Restricted pod security standard: no privilege, no capabilities, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security(fs_group: bool = False) -> dict[str, Any]:
    """Pod-level security context; fs_group makes volumes writable by the non-root user."""
    ctx: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        ctx["fsGroup"] = RUN_AS_USER
    return ctx


def placement(p: Placement) -> dict[str, Any]:
    """nodeSelector and tolerations for a pod spec (omitted when empty)."""
    out: dict[str, Any] = {}
    if p.node_selector:
        out["nodeSelector"] = dict(p.node_selector)
    if p.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in p.tolerations]
    return out


def pod_spec(
    placement_: Placement,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]] | None = None,
    fs_group: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A pod spec of the stack: non-root with seccomp, no service-account token (no pod of ours calls
    the API), no Service environment variables, the spec's placement; `extra` adds fields such as
    restartPolicy."""
    spec: dict[str, Any] = {**extra, "containers": containers}
    if volumes:
        spec["volumes"] = volumes
    spec["securityContext"] = pod_security(fs_group)
    spec["automountServiceAccountToken"] = False
    # No docker-link variables: a Service named like the stack (`qr` gives QR_PORT=tcp://...:8000)
    # would otherwise override the router's QR_* settings in every pod of the namespace.
    spec["enableServiceLinks"] = False
    return {**spec, **placement(placement_)}


def secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    """An env var from a Secret key."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def tmp_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """An emptyDir at /tmp (volume, mount): the root filesystem is read-only."""
    return {"name": "tmp", "emptyDir": {}}, {"name": "tmp", "mountPath": "/tmp"}


def data_volume(
    statefulset_spec: dict[str, Any], storage: str, storage_class: str | None, ephemeral: bool
) -> None:
    """Give a StatefulSet its `data` volume: a claim per pod, or an emptyDir when ephemeral."""
    if ephemeral:
        statefulset_spec["template"]["spec"].setdefault("volumes", []).append(
            {"name": "data", "emptyDir": {}}
        )
    else:
        statefulset_spec["volumeClaimTemplates"] = [volume_claim("data", storage, storage_class)]
        # Deleting or scaling down keeps the data; a person decides when to drop it.
        statefulset_spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }


def volume_claim(name: str, storage: str, storage_class: str | None) -> dict[str, Any]:
    """A StatefulSet volumeClaimTemplate of `storage` bytes."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}
