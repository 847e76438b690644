"""POST /v1/feedback: a rating for one of the caller's experiences."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from quantum_router.api.deps import PrincipalDep, ServicesDep
from quantum_router.api.errors import HTTPProblem
from quantum_router.api.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse
from quantum_router.feedback import Forbidden, NotFound, record_feedback

router = APIRouter(tags=["feedback"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 429, 503)
}


@router.post("/v1/feedback", response_model=FeedbackResponse, responses=_ERRORS)
async def feedback(body: FeedbackRequest, services: ServicesDep, principal: PrincipalDep) -> FeedbackResponse:
    """Store the rating; it replaces the scorer's estimate in the experience's reward."""
    # A rating may follow its answer within milliseconds, before the experience left the writer's queue;
    # someone else's experience too, which must still be refused as theirs rather than as missing.
    await services.experiences.settled(principal.user_id, body.experience_id)
    try:
        reward = await record_feedback(
            services.db, principal.user_id, body.experience_id, body.rating, body.comment
        )
    except NotFound as exc:
        raise HTTPProblem(404, "no such experience", "not_found") from exc
    except Forbidden as exc:
        raise HTTPProblem(403, "this experience belongs to another user", "forbidden") from exc
    return FeedbackResponse(experience_id=body.experience_id, rating=body.rating, reward=reward)
