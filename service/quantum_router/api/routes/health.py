"""GET /v1/health (each dependency's state) and the Kubernetes probes GET /livez and GET /readyz.

The probes take no credentials and no rate-limit token (limits are a dependency of authenticated routes
only), so the kubelet never competes with clients for them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from quantum_router import __version__
from quantum_router.api.deps import DrainDep, ServicesDep
from quantum_router.api.schemas import HealthResponse, LivenessResponse, ReadinessResponse
from quantum_router.cache.base import CacheUnavailable
from quantum_router.context import Services

router = APIRouter(tags=["health"])


async def _cache_ok(services: Services) -> bool:
    try:
        return await services.cache.ping()
    except CacheUnavailable:
        return False


async def _ping(services: Services) -> tuple[bool, bool]:
    """Whether the database and the cache answer, also exported as ``qr_dependency_up``."""
    database_ok = await services.db.ping()
    cache_ok = await _cache_ok(services)
    services.metrics.dependencies_pinged(database=database_ok, cache=cache_ok)
    return database_ok, cache_ok


@router.get("/v1/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(services: ServicesDep) -> JSONResponse:
    """503 when the database (required) is down; the cache is optional, so its loss only degrades."""
    database_ok, cache_ok = await _ping(services)
    status = "ok" if database_ok and cache_ok else ("degraded" if database_ok else "unavailable")
    body = HealthResponse(
        status=status,
        database="ok" if database_ok else "down",
        cache="ok" if cache_ok else "degraded",
        cache_backend=services.cache.name,
        policy_loaded=True,
        policy_version=services.policies.current.version,
        version=__version__,
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)


@router.get("/livez", response_model=LivenessResponse)
async def livez() -> LivenessResponse:
    """Liveness: answers while the event loop does. It checks no dependency on purpose: a database or
    cache outage is not cured by restarting this process, and restarting every replica at once would
    turn an outage into a crash loop."""
    return LivenessResponse(status="ok")


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def readyz(services: ServicesDep, drain: DrainDep) -> JSONResponse:
    """Readiness: 503 once shutdown has begun (``draining``) or while the database is down; a cache
    outage only shows in the body, since requests are still served without the cache."""
    if drain.draining:
        body = ReadinessResponse(status="not_ready", reason="draining")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    database_ok, cache_ok = await _ping(services)
    body = ReadinessResponse(
        status="ready" if database_ok else "not_ready",
        reason=None if database_ok else "database_unavailable",
        database="ok" if database_ok else "down",
        cache="ok" if cache_ok else "degraded",
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if database_ok else 503)
