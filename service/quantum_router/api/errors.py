"""Domain errors to HTTP: clear 4xx for clients, 503/504 with a reason for dependencies, never a bare 500."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
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

    def __init__(
        self,
        status: int,
        detail: str,
        reason: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
        # The request field at fault, for the OpenAI error shape.
        self.param = param


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


# The OpenAI-compatible endpoints answer errors in OpenAI's shape, which its client libraries parse.
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(
    status: int,
    message: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI's API answers errors."""
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _problem(
    request: Request,
    status: int,
    detail: str,
    reason: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    if request.scope["path"] in OPENAI_PATHS:
        return openai_error(status, detail, reason, param, headers)
    return JSONResponse(status_code=status, content={"detail": detail, "reason": reason}, headers=headers)


def _validation_param(error: dict[str, Any]) -> str:
    """``messages.0.role`` for a body error at ("body", "messages", 0, "role")."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    return ".".join(loc)


def internal_error() -> JSONResponse:
    """The 500 for an unexpected exception: no detail of it reaches the client."""
    return JSONResponse(status_code=500, content={"detail": "internal error", "reason": "internal"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""

    @app.exception_handler(HTTPProblem)
    async def _http_problem(request: Request, exc: HTTPProblem) -> JSONResponse:
        return _problem(request, exc.status, exc.detail, exc.reason, exc.headers, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.scope["path"] not in OPENAI_PATHS:
            return await request_validation_exception_handler(request, exc)
        # OpenAI answers 400 naming one parameter; unknown fields are parameters we do not support.
        first = exc.errors()[0]
        param = _validation_param(first)
        if first.get("type") == "extra_forbidden":
            message = f"unsupported parameter: {param}"
        elif first.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        else:
            message = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
        return openai_error(400, message, "invalid_request", param or None)

    @app.exception_handler(DatabaseUnavailable)
    async def _database(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        headers = {"Retry-After": str(DB_RETRY_AFTER_SECONDS)}
        return _problem(request, 503, str(exc), "database_unavailable", headers)

    @app.exception_handler(UpstreamFailure)
    async def _upstream(request: Request, exc: UpstreamFailure) -> JSONResponse:
        status, detail = describe(exc)
        return _problem(request, status, detail, "upstream_timeout" if exc.timed_out else "upstream_failed")

    @app.exception_handler(TooManyJobs)
    async def _too_many_jobs(request: Request, exc: TooManyJobs) -> JSONResponse:
        # A job takes seconds to a few minutes; polling for one to finish first is the client's move.
        return _problem(
            request, 429, str(exc), "too_many_jobs", {"Retry-After": str(JOB_RETRY_AFTER_SECONDS)}
        )

    @app.exception_handler(NoRoutableModel)
    async def _no_model(request: Request, exc: NoRoutableModel) -> JSONResponse:
        return _problem(request, 503, str(exc), "no_routable_model")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return internal_error()
