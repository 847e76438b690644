"""Request and response shapes of the /v1 API (separate from database rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Refuses unknown fields so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class ExecuteOptions(Strict):
    model: str | None = Field(None, description="Force this model instead of letting the policy choose.")
    variations: int | None = Field(None, ge=1, le=5, description="Parallel variations to run and score.")
    bypass_cache: bool = Field(False, description="Skip the cache lookup (the fresh answer is still stored).")
    async_: bool = Field(False, alias="async", description="Return 202 with a job id instead of waiting.")
    max_tokens: int = Field(1024, ge=1, le=32768, description="Upper bound on the completion length.")


class ExecuteRequestBody(Strict):
    prompt: str = Field(
        min_length=1, description="The user prompt; at most QR_MAX_PROMPT_BYTES bytes (UTF-8)."
    )
    persona: str = Field(min_length=1, max_length=64, description="One of /v1/capabilities personas.")
    task_type: str = Field(min_length=1, max_length=64, description="One of /v1/capabilities task_types.")
    options: ExecuteOptions | None = None


class VariationResult(BaseModel):
    model: str
    latency_ms: float
    cost_usd: float
    score: float
    temperature: float
    status: Literal["ok", "error", "timeout"]


class ExecuteResponse(BaseModel):
    answer: str
    model: str
    variations: list[VariationResult]
    cost_usd: float
    latency_ms: float
    cache: Literal["hit", "miss"]
    policy_version: str
    experience_id: str


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["pending"] = "pending"
    status_url: str


class JobError(BaseModel):
    status: int
    detail: str


class JobResponse(BaseModel):
    job_id: str
    status: Literal["pending", "succeeded", "failed"]
    result: ExecuteResponse | None = None
    error: JobError | None = None
    created_at: datetime
    updated_at: datetime


class FeedbackRequest(Strict):
    experience_id: str = Field(min_length=1, max_length=64)
    rating: int = Field(ge=1, le=5, description="1 (useless) to 5 (perfect).")
    comment: str | None = Field(None, max_length=2000)


class FeedbackResponse(BaseModel):
    experience_id: str
    rating: int
    reward: float


class ExperienceSummary(BaseModel):
    experience_id: str
    created_at: datetime
    persona: str
    task_type: str
    model: str
    cost_usd: float
    latency_ms: float
    cache_hit: bool
    policy_version: str
    feedback_rating: float | None


class ModelInfo(BaseModel):
    name: str
    provider: str
    cost_per_1k_tokens: float
    task_types: list[str]


class VariationLimits(BaseModel):
    min: int
    max: int
    complex_default: int
    complex_task_types: list[str]


class RoutingAlias(BaseModel):
    name: str = Field(description="A `model` for /v1/chat/completions that lets the policy choose.")
    cost_weight: float | None = Field(description="Its cost weight; null means the service's default.")


class CapabilitiesResponse(BaseModel):
    models: list[ModelInfo]
    personas: list[str]
    task_types: list[str]
    variations: VariationLimits
    max_prompt_bytes: int
    routing_aliases: list[RoutingAlias]
    policy_version: str


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    database: Literal["ok", "down"]
    cache: Literal["ok", "degraded"]
    cache_backend: str
    policy_loaded: bool
    policy_version: str
    version: str


class LivenessResponse(BaseModel):
    status: Literal["ok"]


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: Literal["database_unavailable", "draining"] | None = None
    # Left out while draining: the answer is 503 whatever they are, so they are not checked.
    database: Literal["ok", "down"] | None = None
    cache: Literal["ok", "degraded"] | None = None


class ErrorResponse(BaseModel):
    detail: str
    reason: str | None = None
