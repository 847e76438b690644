"""GET /v1/experiences: the caller's recent executions (a lag-tolerant read served by a replica)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.api.deps import PrincipalDep, ServicesDep
from quantum_router.api.schemas import ErrorResponse, ExperienceSummary
from quantum_router.db import store
from quantum_router.db.models import Experience

router = APIRouter(tags=["history"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 429, 503)}


@router.get("/v1/experiences", response_model=list[ExperienceSummary], responses=_ERRORS)
async def history(
    services: ServicesDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[ExperienceSummary]:
    """Newest first; includes the caller's own latest writes even while replicas lag."""

    async def _load(session: AsyncSession) -> Sequence[Experience]:
        return await store.recent_experiences(session, principal.user_id, limit)

    await services.experiences.settled(principal.user_id)
    rows = await services.db.read(_load, owner=principal.user_id)
    return [
        ExperienceSummary(
            experience_id=row.id,
            created_at=row.created_at,
            persona=row.persona,
            task_type=row.task_type,
            model=row.action,
            cost_usd=row.cost_usd,
            latency_ms=row.latency_ms,
            cache_hit=row.cache_hit,
            policy_version=row.policy_version,
            feedback_rating=row.feedback_rating,
        )
        for row in rows
    ]
