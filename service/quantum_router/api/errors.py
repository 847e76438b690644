"""Domain errors to HTTP: clear 4xx for clients, 503/504 with a reason for dependencies, never a bare 500."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from quantum_router.db.engine import DatabaseUnavailable
from quantum_router.execution import UpstreamFailure
from quantum_router.jobs import TooManyJobs
from quantum_router.ratelimit import Verdict
from quantum_router.routing import NoRoutableModel

log = logging.getLogger(__name__)
DB_RETRY_AFTER_SECONDS = 5
JOB_RETRY_AFTER_SECONDS = 5


class HTTPProblem(Exception):
    """An error with a status, a human-readable detail, a machine-readable reason and optional headers."""

    def __init__(self, status: int, detail: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}


def rate_limited(verdict: Verdict, detail: str) -> HTTPProblem:
    """429 with a whole-second ``Retry-After`` (at least 1) for a refused rate-limit verdict."""
    retry = max(1, math.ceil(verdict.retry_after_seconds))
    return HTTPProblem(429, detail, "rate_limited", {"Retry-After": str(retry)})


def field_error(field: str, message: str) -> JSONResponse:
    """A 422 shaped like FastAPI's own validation errors, naming the body field."""
    return JSONResponse(
        status_code=422,
        content={"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]},
    )


def describe(exc: Exception) -> tuple[int, str]:
    """Status and detail for an exception raised while executing (also used for async jobs)."""
    if isinstance(exc, HTTPProblem):
        return exc.status, exc.detail
    if isinstance(exc, DatabaseUnavailable):
        return 503, str(exc)
    if isinstance(exc, UpstreamFailure):
        if exc.timed_out:
            return 504, "every provider timed out"
        return 503, f"every provider failed: {exc}"
    if isinstance(exc, NoRoutableModel):
        return 503, str(exc)
    return 500, "internal error"


def _problem(status: int, detail: str, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "reason": reason}, headers=headers)


def internal_error() -> JSONResponse:
    """The 500 for an unexpected exception: no detail of it reaches the client."""
    return _problem(500, "internal error", "internal")


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""

    @app.exception_handler(HTTPProblem)
    async def _http_problem(_: Request, exc: HTTPProblem) -> JSONResponse:
        return _problem(exc.status, exc.detail, exc.reason, exc.headers)

    @app.exception_handler(DatabaseUnavailable)
    async def _database(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        headers = {"Retry-After": str(DB_RETRY_AFTER_SECONDS)}
        return _problem(503, str(exc), "database_unavailable", headers)

    @app.exception_handler(UpstreamFailure)
    async def _upstream(_: Request, exc: UpstreamFailure) -> JSONResponse:
        status, detail = describe(exc)
        return _problem(status, detail, "upstream_timeout" if exc.timed_out else "upstream_failed")

    @app.exception_handler(TooManyJobs)
    async def _too_many_jobs(_: Request, exc: TooManyJobs) -> JSONResponse:
        # A job takes seconds to a few minutes; polling for one to finish first is the client's move.
        return _problem(429, str(exc), "too_many_jobs", {"Retry-After": str(JOB_RETRY_AFTER_SECONDS)})

    @app.exception_handler(NoRoutableModel)
    async def _no_model(_: Request, exc: NoRoutableModel) -> JSONResponse:
        return _problem(503, str(exc), "no_routable_model")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return internal_error()
