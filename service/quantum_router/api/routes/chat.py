"""POST /v1/chat/completions and GET /v1/models: the OpenAI-compatible face of the router.

Both run through the same execution path as /v1/execute (cache, routing, variations, experience log,
limits and metrics); only the request and response shapes differ (see ``quantum_router.chat``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from quantum_router.api.chat_schemas import ChatCompletion, ChatCompletionRequest, ModelList, OpenAIError
from quantum_router.api.deps import PrincipalDep, ServicesDep
from quantum_router.api.errors import HTTPProblem, describe
from quantum_router.chat import (
    ChatRequestError,
    ChunkWriter,
    completion,
    completion_id,
    model_list,
    router_headers,
    to_execute_request,
)
from quantum_router.execution import AnswerStream
from quantum_router.providers.base import ProviderError

log = logging.getLogger(__name__)
router = APIRouter(tags=["openai"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError} for code in (400, 401, 404, 413, 429, 503, 504)
}


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """OpenAI Chat Completions: `model` is a routing alias (the policy chooses) or a catalog model.

    With `stream: true` the answer arrives as Server-Sent Events as the upstream produces it (one chunk
    when several variations run or the cache answers). The router's extras are response headers.
    """
    try:
        execute = to_execute_request(body, request.headers, services.settings, services.catalog)
    except ChatRequestError as exc:
        raise HTTPProblem(exc.status, exc.message, exc.code or "invalid_request", param=exc.param) from exc
    created = int(time.time())
    if not body.stream:
        result = await services.execution.execute(principal.user_id, execute)
        headers = router_headers(
            result, result["model"], result["cache"], result["policy_version"], result["experience_id"]
        )
        return JSONResponse(completion(result, created), headers=headers)
    answer = await services.execution.stream(principal.user_id, execute)
    writer = ChunkWriter(
        completion_id(answer.experience_id),
        created,
        answer.model,
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
    )
    headers = router_headers(
        answer.result, answer.model, answer.cache, answer.policy_version, answer.experience_id
    )
    # No proxy may buffer the stream (nginx honours this header).
    headers["x-accel-buffering"] = "no"
    headers["cache-control"] = "no-cache"
    return StreamingResponse(_events(answer, writer), media_type="text/event-stream", headers=headers)


async def _events(answer: AnswerStream, writer: ChunkWriter) -> AsyncIterator[bytes]:
    first = True
    try:
        async for text in answer.deltas:
            yield writer.delta(text, first)
            first = False
    except ProviderError as exc:
        # The status line is gone: report the failure in the stream, as OpenAI does.
        log.warning("upstream failed mid-stream: %s", exc)
        yield writer.error(f"the upstream failed mid-answer: {exc}")
        return
    except Exception as exc:
        status, detail = describe(exc)
        if status == 500:
            log.exception("stream failed after it began")
        else:
            log.warning("stream failed after it began: %s", detail)
        yield writer.error(detail if status != 500 else "internal error")
        return
    if first:
        yield writer.delta("", first=True)
    assert answer.result is not None  # set when the deltas are exhausted
    yield writer.finish(answer.result)


@router.get("/v1/models", response_model=ModelList, responses=_ERRORS)
async def models(services: ServicesDep, _: PrincipalDep) -> dict[str, Any]:
    """The routing aliases and the catalog's models, in OpenAI's list format."""
    return model_list(services.settings, services.catalog, int(time.time()))
