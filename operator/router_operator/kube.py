"""The operator's only I/O: a few REST calls to the Kubernetes API (server-side apply, get, delete, list).

Paths come from a fixed table of the kinds the operator manages, so no discovery round-trips are made.
The `kubernetes` client supplies configuration, TLS and authentication.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from router_operator import API_VERSION, FIELD_MANAGER, KIND, PLURAL

# (apiVersion, kind) -> plural. Everything the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("postgresql.cnpg.io/v1", "Cluster"): "clusters",
    ("ray.io/v1", "RayCluster"): "rayclusters",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "customresourcedefinitions",
    (API_VERSION, KIND): PLURAL,
}


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = str(message)


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """REST path of a collection or, with `name`, of one object."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    tail = f"/{name}" if name else ""
    return f"{base}{scope}/{PLURALS[(api_version, kind)]}{tail}"


def object_path(obj: Mapping[str, Any]) -> str:
    """REST path of a manifest."""
    meta = obj["metadata"]
    return path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


class Kube:
    """A thin synchronous client; counts its requests so a reconcile's cost can be measured."""

    def __init__(self, api: client.ApiClient, timeout_s: float = 30.0) -> None:
        self.api = api
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self.requests = 0

    def request(
        self,
        method: str,
        resource_path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call; the decoded JSON answer, or KubeError."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, _, _ = self.api.param_serialize(
            method=method,
            resource_path=resource_path,
            query_params=query or [],
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        with self._lock:
            self.requests += 1
        resp = self.api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=self.timeout_s
        )
        data = resp.read()  # type: ignore[no-untyped-call]
        text = data.decode() if isinstance(data, bytes) else str(data or "")
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, text)
        return json.loads(text) if text else None

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply under the operator's field manager; returns the live object (with status)."""
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        result: dict[str, Any] = self.request(
            "PATCH", object_path(obj), query, body=obj, content_type="application/apply-patch+yaml"
        )
        return result

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create; None when it already exists (the existing object is left as it is)."""
        meta = obj["metadata"]
        collection = path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        try:
            result: dict[str, Any] = self.request("POST", collection, [("fieldManager", FIELD_MANAGER)], obj)
            return result
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", path(api_version, kind, namespace, name))
            return result
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete in the background (dependants follow); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self.request("DELETE", path(api_version, kind, namespace, name), body=body)
            return True
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind in one namespace (or all), optionally matching a label selector."""
        query = [("labelSelector", selector)] if selector else None
        answer = self.request("GET", path(api_version, kind, namespace), query)
        items: list[dict[str, Any]] = answer.get("items") or []
        return items

    def merge_patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: Any) -> None:
        """Merge-patch an object's status subresource."""
        resource = path(api_version, kind, namespace, name) + "/status"
        self.request("PATCH", resource, body={"status": status}, content_type="application/merge-patch+json")

    def crd_established(self, name: str) -> bool:
        """Whether a CustomResourceDefinition (e.g. clusters.postgresql.cnpg.io) is installed."""
        crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name)
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
