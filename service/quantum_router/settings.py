"""All configuration in one pydantic-settings class: ``QR_*`` environment variables and a YAML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PACKAGE_DIR = Path(__file__).parent
# The RouteLLM MMLU outcomes shipped in the repository (data/routellm-mmlu): the default dataset of
# `quantum-router train` and `eval`. A wheel installed outside the repository has no such folder.
DEFAULT_DATA_DIR = PACKAGE_DIR.parents[1] / "data" / "routellm-mmlu"
# The admin password README and `make run` document for a local run; production refuses it.
LOCAL_DEFAULT_ADMIN_PASSWORD = "quantum-local-admin"
# Schemes CloudNativePG's secrets, libpq and most tools write; SQLAlchemy needs the async driver named.
_PLAIN_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def _yaml_file() -> Path | None:
    path = os.environ.get("QR_CONFIG_FILE")
    return Path(path) if path else None


class Settings(BaseSettings):
    """Router settings. Every field is ``QR_<FIELD>`` in the environment or a key in ``QR_CONFIG_FILE``."""

    model_config = SettingsConfigDict(env_prefix="QR_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "INFO"
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes on the port (`serve --workers`); more than one needs QR_REDIS_URL.",
    )
    shutdown_grace_seconds: int = Field(
        30, ge=0, description="On SIGTERM, in-flight requests get this long to finish before being cancelled."
    )

    # Persistence
    database_url: str = "sqlite+aiosqlite:///var/quantum-router.db"
    database_replica_urls: list[str] = Field(default_factory=list)
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_seconds: float = Field(5.0, gt=0)
    db_replica_retry_seconds: float = Field(5.0, gt=0)
    experience_batch_max: int = Field(
        256, ge=1, description="Most experience rows the batch writer commits in one transaction."
    )
    experience_queue_size: int = Field(
        10_000, ge=1, description="Experience rows that may wait for the writer before requests block."
    )
    experience_insert_rows: int = Field(
        16,
        ge=1,
        description="Rows per INSERT within a batch's transaction: the most the event loop encodes at once.",
    )
    experience_linger_ms: float = Field(
        50.0,
        ge=0,
        le=1000,
        description="With queued acknowledgement, a batch waits this long after its first row, then commits.",
    )
    experience_acknowledge: Literal["queued", "commit"] = Field(
        "queued",
        description="Answer once the experience is queued (a crash loses what is still queued) or once it "
        "is committed (nothing acknowledged is lost; slower).",
    )
    db_read_your_writes_seconds: float = Field(
        10.0, ge=0, description="After a principal writes, its reads go to the primary for this long."
    )

    # Cache
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_timeout_seconds: float = Field(0.25, gt=0)
    redis_breaker_seconds: float = Field(
        5.0,
        ge=0,
        description="After a Redis failure, skip Redis (cache misses, local rate-limit buckets) this long "
        "before one call probes it again; 0 never skips.",
    )
    cache_ttl_seconds: float = Field(3600.0, gt=0)
    cache_max_entries: int = Field(10_000, ge=1)
    cache_key_prefix: str = "qr:v1:"
    cache_scope: Literal["user", "global"] = Field(
        "user",
        description="user: each user's answers are cached apart, so no one learns what others asked; global: "
        "one cache for everyone (more hits, but a hit tells a user someone sent that prompt recently).",
    )

    # Auth
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "quantum-router"
    jwt_ttl_seconds: int = Field(3600, ge=60)
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    api_key_cache_seconds: float = Field(30.0, ge=0)
    login_rate_limit_per_minute: int = Field(
        10, ge=1, description="Login attempts per client address a minute (successful ones included)."
    )
    login_rate_limit_burst: int = Field(5, ge=1, description="Login attempts a client address may save up.")
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        description="Failed authentications per client address a minute; past them, API keys that need a "
        "database lookup get 429 from that address.",
    )
    auth_failure_burst: int = Field(
        20, ge=1, description="Failed authentications a client address may save up."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated addresses or networks of proxies trusted to name the client in "
        "X-Forwarded-For ('*' for any); per-address limits count that client.",
    )

    # Limits
    max_prompt_bytes: int = Field(32 * 1024, ge=1)
    rate_limit_per_minute: int = Field(600, ge=1)
    rate_limit_burst: int = Field(60, ge=1)
    request_timeout_seconds: float = Field(30.0, gt=0)
    slow_request_seconds: float = Field(2.0, gt=0)
    metrics_token: SecretStr | None = Field(
        None, description="When set, /metrics answers only 'Authorization: Bearer <token>' (on either port)."
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="When set, 'quantum-router serve' exposes metrics on this port (of QR_HOST) instead of "
        "on the API's port, so a network policy can keep them from the public.",
    )
    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json; false: 404.")
    job_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="A replica renews the lease of its running async jobs every third of this; a job whose "
        "lease lapsed (its replica died) is failed by another replica.",
    )
    max_jobs_per_user: int = Field(
        10, ge=1, description="Asynchronous jobs a user may have running at once; past them, 429."
    )
    job_retention_seconds: float = Field(
        86_400.0, gt=0, description="Finished asynchronous jobs (and their results) are deleted after this."
    )

    # Routing
    catalog_file: Path = PACKAGE_DIR / "data" / "catalog.yaml"
    policy_file: Path = PACKAGE_DIR / "data" / "default_policy.npz"
    policy_poll_seconds: float = Field(30.0, gt=0)
    epsilon: float = Field(0.05, ge=0, le=1)
    cost_weight: float | None = Field(None, ge=0, description="Overrides the policy's trained cost weight.")
    latency_weight: float = Field(0.02, ge=0, description="Reward penalty per second of latency.")
    complex_task_types: list[str] = Field(default_factory=lambda: ["code_analysis", "architecture"])
    complex_variations: int = Field(3, ge=1, le=5)
    judge_model: str | None = Field(
        None, description="A catalog model that grades a sample of answers after they are sent; none: off."
    )
    judge_sample_rate: float = Field(0.0, ge=0, le=1, description="Share of fresh answers the judge grades.")
    judge_max_usd_per_hour: float = Field(
        1.0, ge=0, description="Judge calls that would spend more than this in the last hour are skipped."
    )
    judge_concurrency: int = Field(2, ge=1, description="Judge calls running at once per replica.")
    judge_backlog: int = Field(
        100, ge=1, description="Sampled answers waiting for the judge at most; past it, answers go unjudged."
    )
    simulation_judge_noise: float = Field(
        0.1, ge=0, description="Standard deviation, on the 0-1 scale, of a simulated judge's verdicts."
    )
    verifier_answers_file: Path | None = Field(
        None,
        description="JSON lines of {prompt, answer}: answers to these prompts are logged as exact-match "
        "verified (1 or 0).",
    )
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Dataset (CSV or folder of CSVs) that `quantum-router train` and `eval` use without "
        "--dataset; default: the MMLU outcomes in the repository's data/routellm-mmlu.",
    )
    max_variations: int = Field(5, ge=1, le=5)
    random_seed: int | None = None
    routing_aliases: dict[str, float | None] = Field(
        default_factory=lambda: {"router": None, "router-cheap": 20.0, "router-best": 0.0},
        description="OpenAI `model` names that let the policy choose, each with its cost weight "
        "(null: QR_COST_WEIGHT or the policy's own). Higher weights favour cheaper models.",
    )
    chat_persona: str | None = Field(
        None, description="Persona of a chat completion that names none (unset: the catalog's first)."
    )
    chat_task_type: str | None = Field(
        None, description="Task type of a chat completion that names none (unset: `chat`, else the first)."
    )

    # Providers
    provider_timeout_seconds: float = Field(10.0, gt=0)
    provider_max_retries: int = Field(2, ge=0)
    provider_backoff_seconds: float = Field(0.2, ge=0)
    simulation_time_scale: float = Field(1.0, ge=0, description="Multiplies simulated latencies.")

    # Executor: the URL of the Ray Serve variations app (quantum-router ray-serve); unset runs in-process.
    ray_serve_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url_uses_asyncpg(cls, url: str) -> str:
        return async_postgres_url(url)

    @field_validator("database_replica_urls")
    @classmethod
    def _replica_urls_use_asyncpg(cls, urls: list[str]) -> list[str]:
        return [async_postgres_url(url) for url in urls]

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.environment == "production" and (self.jwt_secret is None or self.admin_password is None):
            raise ValueError("production needs QR_JWT_SECRET and QR_ADMIN_PASSWORD")
        if (
            self.environment == "production"
            and self.admin_password is not None
            and self.admin_password.get_secret_value() == LOCAL_DEFAULT_ADMIN_PASSWORD
        ):
            raise ValueError("production refuses the local default QR_ADMIN_PASSWORD; choose another")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("QR_JWT_SECRET must be at least 32 characters")
        if self.workers > 1 and not self.redis_url:
            # Each worker process would keep its own rate-limit buckets and cache: a principal would get
            # its budget once per worker. Redis is what they share.
            raise ValueError(
                "QR_WORKERS above 1 needs QR_REDIS_URL (rate limits and cache shared by the workers)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments, environment, then the YAML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _yaml_file()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def async_postgres_url(url: str) -> str:
    """``postgresql://`` or ``postgres://`` as ``postgresql+asyncpg://``; any other URL unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _PLAIN_POSTGRES_SCHEMES:
        return f"postgresql+asyncpg://{rest}"
    return url


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely (no Python object tags)."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
