"""GET /v1/health: liveness plus each dependency's state."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from quantum_router import __version__
from quantum_router.api.deps import ServicesDep
from quantum_router.api.schemas import HealthResponse
from quantum_router.cache.base import CacheUnavailable

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(services: ServicesDep) -> JSONResponse:
    """503 when the database (required) is down; the cache is optional, so its loss only degrades."""
    database_ok = await services.db.ping()
    try:
        cache_ok = await services.cache.ping()
    except CacheUnavailable:
        cache_ok = False
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
