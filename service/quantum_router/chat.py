"""OpenAI Chat Completions in and out: a chat request as an :class:`ExecuteRequest`, and an answer as a
completion or as stream chunks. Pure functions; the route in ``api/routes/chat.py`` does the I/O.

The prompt the policy sees is the text of the **last user message** (its text parts joined by newlines):
it is what the caller asks now, while the rest of the conversation is context that goes to the upstream
unchanged and is part of the cache key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantum_router.api.chat_schemas import ChatCompletionRequest, ChatMessage
from quantum_router.catalog import Catalog
from quantum_router.execution import ExecuteRequest
from quantum_router.settings import Settings

# Parameters passed to the upstream as the caller gave them (temperature and max_tokens are handled apart).
_PASSED = ("top_p", "stop", "presence_penalty", "frequency_penalty", "seed", "logit_bias", "user")
DEFAULT_MAX_TOKENS = 1024
HEADER_PREFIX = "x-quantum-router-"


class ChatRequestError(Exception):
    """A chat request the router cannot serve: 400 (or 413) naming the parameter."""

    def __init__(self, param: str, message: str, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status
        self.code = code


def message_text(message: ChatMessage) -> str:
    """The text of a message (text parts joined by newlines; no content is empty text)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content)


def policy_prompt(messages: list[ChatMessage]) -> str:
    """What the policy routes on: the text of the last user message."""
    for message in reversed(messages):
        if message.role == "user":
            return message_text(message)
    raise ChatRequestError("messages", "the conversation needs at least one message with role 'user'")


def _option(name: str, headers: Mapping[str, str], metadata: Mapping[str, str]) -> tuple[str, str] | None:
    """(where it came from, value) of a router option: the x-quantum-router-* header, else metadata."""
    header = HEADER_PREFIX + name.replace("_", "-")
    if header in headers:
        return header, headers[header]
    if name in metadata:
        return f"metadata.{name}", metadata[name]
    return None


def _choice(name: str, value: tuple[str, str] | None, allowed: list[str], default: str) -> str:
    if value is None:
        return default
    where, chosen = value
    if chosen not in allowed:
        raise ChatRequestError(where, f"unknown {name} {chosen!r}; one of {allowed}")
    return chosen


def default_task_type(settings: Settings, catalog: Catalog) -> str:
    """The task type of a chat request that names none."""
    if settings.chat_task_type is not None:
        return settings.chat_task_type
    return "chat" if "chat" in catalog.task_types else catalog.task_types[0]


def default_persona(settings: Settings, catalog: Catalog) -> str:
    """The persona of a chat request that names none."""
    return settings.chat_persona if settings.chat_persona is not None else catalog.personas[0]


def to_execute_request(
    body: ChatCompletionRequest, headers: Mapping[str, str], settings: Settings, catalog: Catalog
) -> ExecuteRequest:
    """The execution a chat request asks for, or :class:`ChatRequestError` naming what is wrong."""
    if body.n is not None and body.n != 1:
        raise ChatRequestError(
            "n", "only n=1 is supported; ask for parallel variations with x-quantum-router-variations"
        )
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        raise ChatRequestError("max_completion_tokens", "give max_tokens or max_completion_tokens, not both")
    if body.stream_options is not None and not body.stream:
        raise ChatRequestError("stream_options", "stream_options is only allowed with stream: true")
    cost_weight: float | None = None
    model: str | None = body.model
    if body.model in settings.routing_aliases:
        model, cost_weight = None, settings.routing_aliases[body.model]
    elif body.model not in catalog.model_names:
        raise ChatRequestError(
            "model",
            f"unknown model {body.model!r}; one of {[*settings.routing_aliases, *catalog.model_names]}",
            status=404,
            code="model_not_found",
        )
    metadata = body.metadata or {}
    persona = _choice(
        "persona", _option("persona", headers, metadata), catalog.personas, default_persona(settings, catalog)
    )
    task_type = _choice(
        "task_type",
        _option("task_type", headers, metadata),
        catalog.task_types,
        default_task_type(settings, catalog),
    )
    prompt = policy_prompt(body.messages)
    size = sum(len(message_text(m).encode()) for m in body.messages)
    if size > settings.max_prompt_bytes:
        raise ChatRequestError(
            "messages",
            f"the messages are {size} bytes; the limit is {settings.max_prompt_bytes}",
            status=413,
            code="prompt_too_large",
        )
    params = {name: getattr(body, name) for name in _PASSED if getattr(body, name) is not None}
    if body.response_format is not None:
        params["response_format"] = body.response_format.model_dump(exclude_none=True)
    return ExecuteRequest(
        prompt=prompt,
        persona=persona,
        task_type=task_type,
        model=model,
        variations=_variations(_option("variations", headers, metadata), settings.max_variations),
        bypass_cache=_flag(_option("bypass_cache", headers, metadata)),
        max_tokens=body.max_tokens or body.max_completion_tokens or DEFAULT_MAX_TOKENS,
        messages=tuple(m.model_dump(exclude_none=True) for m in body.messages),
        params=params,
        temperature=body.temperature,
        cost_weight=cost_weight,
    )


def _variations(value: tuple[str, str] | None, most: int) -> int | None:
    if value is None:
        return None
    where, text = value
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ChatRequestError(where, f"variations must be a whole number from 1 to {most}")
    return int(text)


def _flag(value: tuple[str, str] | None) -> bool:
    if value is None:
        return False
    where, text = value
    if text.lower() not in ("true", "false", "1", "0"):
        raise ChatRequestError(where, "bypass_cache must be true or false")
    return text.lower() in ("true", "1")


def router_headers(
    result: Mapping[str, Any] | None, model: str, cache: str, policy_version: str, experience_id: str
) -> dict[str, str]:
    """The router's extras as response headers (the cost only when the whole answer is known)."""
    headers = {
        HEADER_PREFIX + "model": model,
        HEADER_PREFIX + "cache": cache,
        HEADER_PREFIX + "policy-version": policy_version,
        HEADER_PREFIX + "experience-id": experience_id,
    }
    if result is not None:
        headers[HEADER_PREFIX + "cost-usd"] = f"{result['cost_usd']:.8f}"
    return headers


def completion_id(experience_id: str) -> str:
    """The completion's id: the experience id, which the caller can rate through /v1/feedback."""
    return f"chatcmpl-{experience_id}"


def _usage(result: Mapping[str, Any]) -> dict[str, int]:
    # A cache hit used no upstream tokens; answers cached by older versions carry no usage.
    usage = result.get("usage") if result.get("cache") != "hit" else None
    prompt = int((usage or {}).get("prompt_tokens", 0))
    completion = int((usage or {}).get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(result: Mapping[str, Any], created: int) -> dict[str, Any]:
    """An ``/v1/execute``-style result as an OpenAI ``chat.completion``."""
    return {
        "id": completion_id(result["experience_id"]),
        "object": "chat.completion",
        "created": created,
        "model": result["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["answer"]},
                "finish_reason": result.get("finish_reason", "stop"),
            }
        ],
        "usage": _usage(result),
    }


@dataclass(frozen=True)
class ChunkWriter:
    """Builds the Server-Sent Events of one streamed completion in OpenAI's chunk format."""

    id: str
    created: int
    model: str
    include_usage: bool

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def delta(self, text: str, first: bool = False) -> bytes:
        """A piece of the answer (the first chunk also carries the role, as OpenAI's does)."""
        delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {"content": text}
        return self._event([{"index": 0, "delta": delta, "finish_reason": None}])

    def finish(self, result: Mapping[str, Any]) -> bytes:
        """The last chunk(s): the finish reason, the usage when asked for, then ``[DONE]``."""
        events = self._event(
            [{"index": 0, "delta": {}, "finish_reason": result.get("finish_reason", "stop")}]
        )
        if self.include_usage:
            events += self._event([], _usage(result))
        return events + b"data: [DONE]\n\n"

    @staticmethod
    def error(message: str, kind: str = "server_error") -> bytes:
        """An error after the stream began (OpenAI's clients raise it), then ``[DONE]``."""
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"


def model_list(settings: Settings, catalog: Catalog, created: int) -> dict[str, Any]:
    """GET /v1/models: the routing aliases, then the catalog's models."""
    aliases = [
        {"id": name, "object": "model", "created": created, "owned_by": "quantum-router"}
        for name in settings.routing_aliases
    ]
    models = [
        {"id": m.name, "object": "model", "created": created, "owned_by": m.provider} for m in catalog.models
    ]
    return {"object": "list", "data": aliases + models}
