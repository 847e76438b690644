"""The operator's settings: environment variables QR_OPERATOR_* (one class, no scattered constants)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """How the operator watches, how often it re-levels, and what it may probe."""

    model_config = SettingsConfigDict(env_prefix="QR_OPERATOR_", extra="ignore")

    namespaces: list[str] = Field(
        default_factory=list, description="Watch only these; empty: every namespace."
    )
    resync_seconds: float = Field(30.0, gt=0, description="Every RouterDeployment is re-levelled this often.")
    requeue_seconds: float = Field(
        1.0, gt=0, description="First look again at a stack that is coming up; doubles up to resync_seconds."
    )
    facts_ttl_seconds: float = Field(
        300.0, ge=0, description="How long the CRD look-ups (CNPG, KubeRay) are kept."
    )
    workers: int = Field(8, ge=1, description="Threads that run reconciles (each does blocking API calls).")
    request_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one API request.")
    liveness_port: int = Field(8080, ge=0, le=65535, description="Port of /healthz; 0 turns it off.")
    liveness_host: str = Field("127.0.0.1", description="Address /healthz listens on (0.0.0.0 in a pod).")
    peering: str | None = Field(
        None, description="A KopfPeering name for HA (several replicas); unset: standalone."
    )
    probe_policy: bool | None = Field(
        None,
        description="Read the serving policy version from the router Service's /v1/health; unset: only when "
        "running inside the cluster (where Service names resolve).",
    )
