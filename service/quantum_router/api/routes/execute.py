"""POST /v1/execute and GET /v1/jobs/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from quantum_router.api.deps import PrincipalDep, ServicesDep
from quantum_router.api.errors import HTTPProblem, field_error
from quantum_router.api.schemas import (
    ErrorResponse,
    ExecuteRequestBody,
    ExecuteResponse,
    JobAccepted,
    JobError,
    JobResponse,
)
from quantum_router.execution import ExecuteRequest

router = APIRouter(tags=["execute"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 429, 503, 504)
}


def _validate(body: ExecuteRequestBody, services: ServicesDep) -> ExecuteRequest | JSONResponse:
    catalog = services.catalog
    if body.persona not in catalog.personas:
        return field_error("persona", f"unknown persona; one of {catalog.personas}")
    if body.task_type not in catalog.task_types:
        return field_error("task_type", f"unknown task_type; one of {catalog.task_types}")
    options = body.options
    if options is not None and options.model is not None and options.model not in catalog.model_names:
        return field_error("options.model", f"unknown model; one of {catalog.model_names}")
    if (
        options is not None
        and options.variations is not None
        and options.variations > services.settings.max_variations
    ):
        return field_error("options.variations", f"at most {services.settings.max_variations} variations")
    size = len(body.prompt.encode())
    if size > services.settings.max_prompt_bytes:
        raise HTTPProblem(
            413,
            f"prompt is {size} bytes; the limit is {services.settings.max_prompt_bytes}",
            "prompt_too_large",
        )
    return ExecuteRequest(
        prompt=body.prompt,
        persona=body.persona,
        task_type=body.task_type,
        model=options.model if options else None,
        variations=options.variations if options else None,
        bypass_cache=options.bypass_cache if options else False,
        max_tokens=options.max_tokens if options else 1024,
    )


@router.post(
    "/v1/execute",
    response_model=ExecuteResponse,
    responses={**_ERRORS, 202: {"model": JobAccepted}},
)
async def execute(body: ExecuteRequestBody, services: ServicesDep, principal: PrincipalDep) -> Any:
    """Route the prompt, run its variations, return the best answer (or 202 and a job id when async)."""
    request = _validate(body, services)
    if isinstance(request, JSONResponse):
        return request
    if body.options is not None and body.options.async_:
        job_id = await services.jobs.submit(principal.user_id, request)
        accepted = JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}")
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.status_url})
    return await services.execution.execute(principal.user_id, request)


@router.get("/v1/jobs/{job_id}", response_model=JobResponse, responses=_ERRORS)
async def get_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JobResponse:
    """The state of an asynchronous execution (its owner only)."""
    job = await services.jobs.get(job_id)
    if job is None:
        raise HTTPProblem(404, "no such job", "not_found")
    if job.user_id != principal.user_id:
        raise HTTPProblem(403, "this job belongs to another user", "forbidden")
    return JobResponse(
        job_id=job.id,
        status=job.status,
        result=ExecuteResponse.model_validate(job.result) if job.result else None,
        error=JobError.model_validate(job.error) if job.error else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
