"""Everything a running service holds, built once in the application's lifespan."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from quantum_router.auth.authenticator import Authenticator
from quantum_router.cache.base import Cache
from quantum_router.cache.breaker import CircuitBreaker
from quantum_router.cache.factory import build_cache
from quantum_router.catalog import Catalog, load_catalog
from quantum_router.db.engine import Database
from quantum_router.db.experience_writer import ExperienceWriter
from quantum_router.db.migrate import upgrade
from quantum_router.default_policy import prior_policy
from quantum_router.execution import ExecutionService
from quantum_router.executors.base import Executor
from quantum_router.executors.factory import build_executor
from quantum_router.jobs import ErrorMapper, JobRunner
from quantum_router.judge import Judge
from quantum_router.metrics import Metrics
from quantum_router.policy import Policy, load_policy
from quantum_router.policy_store import PolicyStore
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.ratelimit import RateLimiter, build_rate_limiter
from quantum_router.settings import Settings
from quantum_router.users import ensure_admin

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The service's collaborators; routes reach them through ``api.deps``."""

    settings: Settings
    catalog: Catalog
    db: Database
    cache: Cache
    policies: PolicyStore
    providers: ProviderRegistry
    executor: Executor
    metrics: Metrics
    experiences: ExperienceWriter
    execution: ExecutionService
    jobs: JobRunner
    limiter: RateLimiter
    jwt_secret: str
    capabilities: dict[str, Any]
    authenticator: Authenticator
    background: list[asyncio.Task[None]] = field(default_factory=list)
    judge: Judge | None = None


def capabilities_of(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    """The static part of /v1/capabilities, computed once."""
    return {
        "models": [
            {
                "name": m.name,
                "provider": m.provider,
                "cost_per_1k_tokens": m.cost_per_1k_tokens,
                "task_types": m.suits,
            }
            for m in catalog.models
        ],
        "personas": catalog.personas,
        "task_types": catalog.task_types,
        "variations": {
            "min": 1,
            "max": settings.max_variations,
            "complex_default": settings.complex_variations,
            "complex_task_types": settings.complex_task_types,
        },
        "max_prompt_bytes": settings.max_prompt_bytes,
        "routing_aliases": [
            {"name": name, "cost_weight": weight} for name, weight in settings.routing_aliases.items()
        ],
    }


def initial_policy(settings: Settings, catalog: Catalog) -> Policy:
    """The policy file, or the catalog's prior when the file knows none of the catalog's models."""
    policy = load_policy(settings.policy_file)
    if set(policy.models) & set(catalog.model_names):
        return policy
    log.warning("policy %s routes none of the catalog's models; using the catalog prior", policy.version)
    return prior_policy(catalog)


async def prepare_database(db: Database, settings: Settings) -> None:
    """Migrate to the latest schema and create (or rotate the password of) the admin user."""
    await upgrade(db.primary)
    admin_password = settings.admin_password.get_secret_value() if settings.admin_password else None
    if admin_password is not None:
        # Every start makes QR_ADMIN_PASSWORD the admin's password, so changing it and restarting rotates it.
        outcome = await ensure_admin(db, settings.admin_username, admin_password)
        if outcome == "created":
            log.info("created admin user %r", settings.admin_username)
        elif outcome == "rotated":
            log.warning("rotated the password of admin user %r to QR_ADMIN_PASSWORD", settings.admin_username)


async def start_services(settings: Settings, metrics: Metrics, describe_error: ErrorMapper) -> Services:
    """Open connections, migrate, create the admin, load the newest policy and start the policy poller."""
    catalog = load_catalog(settings.catalog_file)
    db = Database(settings)
    metrics.watch_pools(db.pool_stats)
    await prepare_database(db, settings)
    jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else secrets.token_urlsafe(48)
    if settings.jwt_secret is None:
        log.warning("QR_JWT_SECRET is not set: tokens are signed with a random key and die with this process")
    policies = PolicyStore(initial_policy(settings, catalog), on_swap=metrics.serving_policy)
    redis_breaker = CircuitBreaker(settings.redis_breaker_seconds)
    cache = build_cache(settings, redis_breaker)
    await policies.refresh(db, cache)
    providers = ProviderRegistry(catalog, settings)
    executor = build_executor(settings, providers)
    experiences = ExperienceWriter(
        db,
        metrics,
        settings.experience_batch_max,
        settings.experience_queue_size,
        settings.experience_acknowledge,
        settings.experience_linger_ms / 1000,
        settings.experience_insert_rows,
    )
    experiences.start()
    judge = Judge(settings, catalog, providers, db, experiences, metrics) if settings.judge_model else None
    execution = ExecutionService(
        settings, catalog, policies, executor, cache, metrics, providers, experiences, judge=judge
    )
    limiter = build_rate_limiter(settings, redis_breaker)
    services = Services(
        settings=settings,
        catalog=catalog,
        db=db,
        cache=cache,
        policies=policies,
        providers=providers,
        executor=executor,
        metrics=metrics,
        experiences=experiences,
        execution=execution,
        judge=judge,
        jobs=JobRunner(
            db,
            execution.execute,
            describe_error,
            settings.job_lease_seconds,
            settings.max_jobs_per_user,
            settings.job_retention_seconds,
        ),
        limiter=limiter,
        jwt_secret=jwt_secret,
        capabilities=capabilities_of(settings, catalog),
        authenticator=Authenticator(db, settings, jwt_secret, limiter),
    )
    services.background.append(asyncio.create_task(policies.poll(db, settings.policy_poll_seconds, cache)))
    # Its first round fails the jobs of replicas that died; it never touches those of live replicas.
    services.jobs.start()
    return services


async def stop_services(services: Services) -> None:
    """Stop background work and close every connection."""
    for task in services.background:
        task.cancel()
    await asyncio.gather(*services.background, return_exceptions=True)
    await services.jobs.close()
    if services.judge is not None:
        await services.judge.close()  # before the writer closes: a verdict waits for its row's commit
    # After the jobs (which may still log experiences), before the pools close: every queued row is written.
    await services.experiences.close(drain_seconds=services.settings.shutdown_grace_seconds)
    await services.executor.close()
    await services.providers.close()
    await services.cache.close()
    await services.limiter.close()
    await services.db.dispose()
