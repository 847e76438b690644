"""What the builders need beyond the spec: the owner and the facts about the cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router_operator.owner import Owner
from router_operator.spec import RouterDeploymentSpec

DatabaseKind = Literal["StatefulSet", "CloudNativePG", "External"]
RayKind = Literal["Deployment", "KubeRay", "External", "None"]

ROUTER_PORT = 8000
REDIS_PORT = 6379
POSTGRES_PORT = 5432
RAY_GCS_PORT = 6379
RAY_CLIENT_PORT = 10001
RAY_DASHBOARD_PORT = 8265
DATABASE_NAME = "router"
DATABASE_USER = "router"
CNPG_DATABASE = "app"


@dataclass(frozen=True)
class Facts:
    """Optional CRDs found in the cluster (the Auto providers choose by them)."""

    cloudnativepg: bool = False
    kuberay: bool = False


@dataclass(frozen=True)
class Context:
    """Everything a builder reads: owner, parsed spec, cluster facts. Builders never do I/O."""

    owner: Owner
    spec: RouterDeploymentSpec
    facts: Facts = Facts()

    @property
    def database_kind(self) -> DatabaseKind:
        """Which database the stack uses, with Auto resolved."""
        db = self.spec.database
        if db.external is not None:
            return "External"
        provider = db.managed_or_default.provider
        if provider == "Auto":
            return "CloudNativePG" if self.facts.cloudnativepg else "StatefulSet"
        return provider

    @property
    def ray_kind(self) -> RayKind:
        """Which Ray cluster training uses, with Auto resolved."""
        training = self.spec.training
        if not training.enabled:
            return "None"
        if training.ray_address:
            return "External"
        provider = training.ray_or_default.provider
        if provider == "Auto":
            return "KubeRay" if self.facts.kuberay else "Deployment"
        return provider
