"""The RouterDeployment spec as typed models: the one source of the CRD schema, the docs and the builders.

Field names are snake_case here and camelCase in the resource (aliases). Every field has a description
and a default; cross-field rules that the API server can check are CEL rules in `x-kubernetes-validations`
(see crd.py), and the same rules are model validators so builders never see an inconsistent spec.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

# A Kubernetes quantity such as 500m, 1, 2Gi: YAML may give it as a number or a string.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
    ),
]
# Objects passed through to Kubernetes as they are (validated by the API server when the child is applied).
FreeForm = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]


def cel(rule: str, message: str) -> JsonDict:
    """One CEL validation rule with the sentence a user sees when it fails."""
    return {"rule": rule, "message": message}


class Model(BaseModel):
    """Base: camelCase aliases, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SecretKeyRef(Model):
    """A key of a Secret in the RouterDeployment's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class ConfigMapKeyRef(Model):
    """A key of a ConfigMap in the RouterDeployment's namespace."""

    name: str = Field(min_length=1, description="Name of the ConfigMap.")
    key: str = Field("catalog.yaml", min_length=1, description="Key inside the ConfigMap.")


class Resources(Model):
    """Container resource requests and limits (Kubernetes quantities)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Requests, e.g. cpu: 250m.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Limits, e.g. memory: 512Mi.")


class Autoscaling(Model):
    """A HorizontalPodAutoscaler (autoscaling/v2) on the router Deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                    "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                )
            ]
        }
    )
    enabled: bool = Field(True, description="Create the HPA. When on, spec.replicas is its minimum.")
    min_replicas: int | None = Field(
        None, ge=1, description="HPA minimum; unset means spec.replicas (so `kubectl scale` moves it)."
    )
    max_replicas: int = Field(10, ge=1, description="HPA maximum.")
    target_cpu_utilization: int | None = Field(
        70, ge=1, le=100, description="Average CPU utilisation (% of requests) to aim for; unset: not used."
    )
    target_memory_utilization: int | None = Field(
        80,
        ge=1,
        le=100,
        description="Average memory utilisation (% of requests) to aim for; unset: not used.",
    )
    target_inflight_requests: int | None = Field(
        None,
        ge=1,
        description="Average of the router's quantum_router_inflight_requests per pod to aim for "
        "(a Pods metric; needs a custom metrics adapter such as prometheus-adapter).",
    )
    behavior: FreeForm | None = Field(
        None,
        description="The HPA's scaling behavior as autoscaling/v2 takes it (scaleUp/scaleDown: "
        "stabilizationWindowSeconds, policies); unset: Kubernetes' defaults (scale down only after 300 s).",
    )


class ProviderKey(Model):
    """An environment variable of the router filled from a Secret (provider API keys)."""

    env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$", description="Variable name, as a catalog model's api_key_env names it."
    )
    secret_key_ref: SecretKeyRef = Field(description="Where the value is.")


class Catalog(Model):
    """The model catalog: inline, from a ConfigMap, or the image's built-in simulated fleet."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.inline) && has(self.configMapRef))",
                    "catalog.inline and catalog.configMapRef are mutually exclusive",
                )
            ]
        }
    )
    inline: FreeForm | None = Field(
        None,
        description="The catalog itself (personas, task_types, models), as in the router's catalog.yaml.",
    )
    config_map_ref: ConfigMapKeyRef | None = Field(None, description="A ConfigMap key holding catalog.yaml.")
    provider_keys: list[ProviderKey] = Field(
        default_factory=list, description="Provider API keys, only ever from Secrets."
    )


class Routing(Model):
    """How the router chooses and how many variations it runs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.complexVariations) || !has(self.maxVariations) "
                    "|| self.complexVariations <= self.maxVariations",
                    "routing.complexVariations must not exceed routing.maxVariations",
                )
            ]
        }
    )
    cost_weight: float | None = Field(
        None, ge=0, description="Reward penalty per USD; unset uses the policy's trained weight."
    )
    epsilon: float = Field(0.05, ge=0, le=1, description="Exploration rate of the epsilon-greedy choice.")
    complex_variations: int = Field(3, ge=1, le=5, description="Variations run for complex task types.")
    max_variations: int = Field(5, ge=1, le=5, description="Most variations a caller may ask for.")
    complex_task_types: list[str] = Field(
        default_factory=lambda: ["code_analysis", "architecture"],
        description="Task types that run several variations.",
    )


class ManagedStore(Model):
    """What every managed data store's pods share: where their volumes come from and their resources."""

    storage_class_name: str | None = Field(
        None, description="StorageClass of the volumes; unset: the default."
    )
    resources: Resources = Field(default_factory=Resources, description="Resources of each pod.")


class ManagedRedis(ManagedStore):
    """A Redis Cluster the operator runs: shards x (1 + replicasPerShard) pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.shards) || self.shards >= 3", "a Redis Cluster needs at least 3 shards")
            ]
        }
    )
    shards: int = Field(3, ge=1, le=100, description="Primary shards (hash-slot owners); at least 3.")
    replicas_per_shard: int = Field(1, ge=0, le=5, description="Replicas of each primary.")
    storage: Quantity = Field("1Gi", description="Persistent volume size per Redis pod.")
    ephemeral: bool = Field(
        False, description="emptyDir instead of volumes: a restarted pod rejoins empty (a pure cache)."
    )
    image: str = Field(
        "quantum-router-redis:0.1.0",
        description="Image with redis-server and redis-cli (images/Containerfile).",
    )


class ExternalRedis(Model):
    """A Redis the operator does not manage."""

    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the redis:// URL.")
    cluster: bool = Field(True, description="The URL points at a Redis Cluster (not a single node).")


class Cache(Model):
    """The shared answer cache: a managed Redis Cluster (default), an external Redis, or none."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.managed) && has(self.external))",
                    "cache.managed and cache.external are mutually exclusive",
                ),
                cel(
                    "!has(self.enabled) || self.enabled || !(has(self.managed) || has(self.external))",
                    "cache.enabled=false takes neither cache.managed nor cache.external",
                ),
            ]
        }
    )
    enabled: bool = Field(True, description="false: every router pod keeps its own in-process cache.")
    managed: ManagedRedis | None = Field(
        None, description="Managed Redis Cluster (the default when enabled)."
    )
    external: ExternalRedis | None = Field(None, description="An existing Redis instead of a managed one.")

    @property
    def mode(self) -> Literal["managed", "external", "none"]:
        """Which kind of cache the spec asks for."""
        if not self.enabled:
            return "none"
        return "external" if self.external is not None else "managed"

    @property
    def managed_or_default(self) -> ManagedRedis:
        """The managed block, defaulted when the spec leaves it out."""
        return self.managed or ManagedRedis()


class ManagedDatabase(ManagedStore):
    """PostgreSQL the operator runs: a primary and streaming read replicas."""

    provider: Literal["Auto", "StatefulSet", "CloudNativePG"] = Field(
        "Auto",
        description="StatefulSet: our primary and replica StatefulSets; CloudNativePG: a postgresql.cnpg.io "
        "Cluster; Auto: CloudNativePG when its CRD is installed, else StatefulSet.",
    )
    replicas: int = Field(1, ge=0, le=10, description="Read replicas beside the primary.")
    storage: Quantity = Field("5Gi", description="Persistent volume size per PostgreSQL pod.")
    ephemeral: bool = Field(
        False, description="emptyDir instead of volumes: data is lost with the pod. For tests and demos only."
    )
    image: str = Field(
        "quantum-router-postgres:0.1.0",
        description="Image with PostgreSQL 15 server binaries (images/Containerfile).",
    )


class ExternalDatabase(Model):
    """A PostgreSQL the operator does not manage."""

    primary_url_secret_ref: SecretKeyRef = Field(description="Secret key holding the read-write URL.")
    replica_url_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding a read-only URL (a replica or a load-balanced -ro endpoint)."
    )


class Database(Model):
    """Users, API keys, experiences and policies: managed PostgreSQL (default) or external URLs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.managed) && has(self.external))",
                    "database.managed and database.external are mutually exclusive",
                )
            ]
        }
    )
    managed: ManagedDatabase | None = Field(None, description="Managed PostgreSQL (the default).")
    external: ExternalDatabase | None = Field(
        None, description="Existing PostgreSQL instead of a managed one."
    )

    @property
    def managed_or_default(self) -> ManagedDatabase:
        """The managed block, defaulted when the spec leaves it out."""
        return self.managed or ManagedDatabase()


class RayWorkers(Model):
    """Ray worker pods."""

    replicas: int = Field(1, ge=0, le=100, description="Worker pods.")
    resources: Resources = Field(default_factory=Resources, description="Resources of each worker.")


class RayCluster(Model):
    """A Ray cluster for training, run by the operator (or by KubeRay when installed)."""

    provider: Literal["Auto", "Deployment", "KubeRay"] = Field(
        "Auto",
        description="Deployment: our head and worker Deployments; KubeRay: a ray.io RayCluster; "
        "Auto: KubeRay when its CRD is installed, else Deployment.",
    )
    head_resources: Resources = Field(default_factory=Resources, description="Resources of the head pod.")
    workers: RayWorkers = Field(default_factory=RayWorkers, description="Worker pods.")


class Training(Model):
    """Scheduled training on the experience log; publishes a new policy the routers hot-reload."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.rayAddress) && has(self.ray))",
                    "training.rayAddress (an existing Ray) and training.ray (a managed one) "
                    "are mutually exclusive",
                )
            ]
        }
    )
    enabled: bool = Field(True, description="Run the Ray cluster and the training CronJob.")
    schedule: str = Field(
        "0 */6 * * *",
        pattern=r"^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|(\S+\s+){4}\S+)$",
        description="Cron schedule of `quantum-router train --from-log --publish`.",
    )
    image: str = Field("quantum-router-train:0.1.0", description="Image with the router, Ray and torch.")
    steps: int = Field(20000, ge=100, description="Experiences sampled per training run.")
    ray_address: str | None = Field(
        None, description="An existing Ray cluster (ray://host:10001) to train on."
    )
    ray: RayCluster | None = Field(None, description="The managed Ray cluster (the default).")

    @property
    def ray_or_default(self) -> RayCluster:
        """The managed Ray block, defaulted when the spec leaves it out."""
        return self.ray or RayCluster()


class TopologySpread(Model):
    """How router pods spread over nodes."""

    enabled: bool = Field(True, description="Add a topology spread constraint for the router pods.")
    topology_key: str = Field("kubernetes.io/hostname", description="Node label to spread over.")
    max_skew: int = Field(1, ge=1, description="Largest allowed difference in pods between two domains.")
    when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        "ScheduleAnyway", description="What the scheduler does when the spread cannot be met."
    )


class Toleration(Model):
    """A Kubernetes toleration."""

    key: str | None = Field(None, description="Taint key; unset with Exists tolerates every taint.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; unset matches every effect."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute: how long the pod stays.")


class Placement(Model):
    """Where every pod of the stack may run."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels a pod requires.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    topology_spread: TopologySpread = Field(default_factory=TopologySpread, description="Router pod spread.")


class RouterDeploymentSpec(Model):
    """The whole stack, as a platform engineer describes it.

    CEL rules guard every field with has(): the API server also checks them against the bare `{}`
    defaults of the objects, before nested defaults are filled in.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.autoscaling) || !has(self.replicas) || !self.autoscaling.enabled "
                    "|| has(self.autoscaling.minReplicas) || self.replicas <= self.autoscaling.maxReplicas",
                    "replicas (the HPA minimum) must not exceed autoscaling.maxReplicas",
                ),
                cel(
                    "!has(self.autoscaling) || !has(self.replicas) || !self.autoscaling.enabled "
                    "|| has(self.autoscaling.minReplicas) || self.replicas >= 1",
                    "replicas (the HPA minimum) must be at least 1 while autoscaling is enabled",
                ),
            ]
        }
    )
    image: str = Field("quantum-router:0.1.0", min_length=1, description="Router image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of every image."
    )
    replicas: int = Field(
        2, ge=0, le=1000, description="Router pods; the HPA's minimum while autoscaling is enabled."
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "250m", "memory": "256Mi"}, limits={"memory": "512Mi"}
        ),
        description="Resources of each router pod (the HPA's utilisation targets are relative to requests).",
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Horizontal autoscaling.")
    catalog: Catalog = Field(default_factory=Catalog, description="The model catalog.")
    routing: Routing = Field(default_factory=Routing, description="Routing settings.")
    settings: dict[str, str] = Field(
        default_factory=dict,
        description="Further router settings as QR_* variables (see the router's README); secrets do not "
        "belong here.",
    )
    cache: Cache = Field(default_factory=Cache, description="The answer cache.")
    database: Database = Field(default_factory=Database, description="The database.")
    training: Training = Field(default_factory=Training, description="Scheduled training.")
    placement: Placement = Field(default_factory=Placement, description="Pod placement.")

    @model_validator(mode="after")
    def _cross_field(self) -> RouterDeploymentSpec:
        # The same rules as the CEL ones, so a spec built in Python is as valid as one the API accepted.
        a = self.autoscaling
        if a.enabled and a.min_replicas is None and self.replicas < 1:
            raise ValueError("replicas (the HPA minimum) must be at least 1 while autoscaling is enabled")
        if a.enabled and self.min_replicas > a.max_replicas:
            raise ValueError("replicas (the HPA minimum) must not exceed autoscaling.maxReplicas")
        if self.routing.complex_variations > self.routing.max_variations:
            raise ValueError("routing.complexVariations must not exceed routing.maxVariations")
        for block, name in ((self.cache, "cache"), (self.database, "database")):
            if getattr(block, "managed", None) is not None and getattr(block, "external", None) is not None:
                raise ValueError(f"{name}.managed and {name}.external are mutually exclusive")
        return self

    @property
    def min_replicas(self) -> int:
        """Pods the router always has: the HPA minimum when autoscaling, else the replica count."""
        if self.autoscaling.enabled:
            return self.autoscaling.min_replicas or self.replicas
        return self.replicas
