"""OpenAI-compatible Chat Completions over pooled HTTP (OpenAI, vLLM, Ollama, llama.cpp, TGI, ...).

The client is aiohttp's: at 16 concurrent calls httpx's pool spent about 1.5 ms of CPU per request (it
checks every pooled connection for expiry on each request), aiohttp about 0.13 ms; see
docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import (
    Completion,
    CompletionRequest,
    Delta,
    ProviderError,
    ProviderTimeout,
    StreamEvent,
    estimate_tokens,
)

T = TypeVar("T")

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _retry_after(response: aiohttp.ClientResponse, cap: float) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        return None


class OpenAICompatibleProvider:
    """One pooled ``aiohttp.ClientSession`` per upstream base URL; retries 429/5xx with jittered backoff."""

    def __init__(self, models: dict[str, ModelSpec], max_retries: int, backoff_seconds: float) -> None:
        self._models = models
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._rng = random.Random()

    def _session(self, spec: ModelSpec) -> tuple[aiohttp.ClientSession, str]:
        """The pooled session for the model's upstream, and the model's Chat Completions URL."""
        assert spec.base_url is not None  # the catalog validates this
        base = spec.base_url.rstrip("/")
        session = self._sessions.get(base)
        if session is None or session.closed:
            headers = {}
            key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
                # Upstream answers are JSON we parse ourselves; no cookies between callers.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[base] = session
        return session, f"{base}/chat/completions"

    async def complete(self, request: CompletionRequest) -> Completion:
        """POST /chat/completions, retrying retryable failures within the request's timeout."""
        spec = self._models[request.model]
        return await self._with_retries(spec, request, lambda seconds: self._once(spec, request, seconds))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """POST /chat/completions with ``stream: true``: deltas as the upstream sends them, then the whole
        completion. Retries happen only before the first delta; later failures end the stream with an error.
        """
        spec = self._models[request.model]
        # The timeout bounds the wait for the status line and then each socket read, not
        # the whole answer: a long answer that keeps arriving is not cut off.
        response = await self._with_retries(spec, request, lambda seconds: self._open(spec, request, seconds))
        parts: list[str] = []
        usage: dict[str, Any] = {}
        finish_reason = "stop"
        try:
            async for data in _sse_data(response):
                if data == "[DONE]":
                    break
                event = _parse_chunk(spec, data)
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(str(text))
                        yield Delta(str(text))
        except TimeoutError as exc:
            raise ProviderTimeout(f"{spec.name}: upstream stream stalled") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"{spec.name}: stream broke: {type(exc).__name__}", retryable=False) from exc
        finally:
            response.release()
        text = "".join(parts)
        # Upstreams that ignore stream_options send no usage: estimate, as the simulated fleet does.
        yield Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)) or _estimate_prompt_tokens(request),
            completion_tokens=int(usage.get("completion_tokens", 0)) or estimate_tokens(text),
            finish_reason=str(finish_reason),
        )

    async def _with_retries(
        self, spec: ModelSpec, request: CompletionRequest, attempt_once: Callable[[float], Awaitable[T]]
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_seconds
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderTimeout(f"{spec.name}: no answer within {request.timeout_seconds:.1f}s")
            try:
                return await attempt_once(remaining)
            except ProviderError as exc:
                if not exc.retryable or attempt >= self._max_retries:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = self._backoff * (2**attempt) * (0.5 + self._rng.random())
                if loop.time() + delay >= deadline:
                    raise
                attempt += 1
                await asyncio.sleep(delay)

    def _body(self, spec: ModelSpec, request: CompletionRequest) -> dict[str, Any]:
        messages = list(request.messages) or [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.prompt},
        ]
        return {
            **request.params,
            "model": spec.upstream_model or spec.name,
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }

    async def _once(self, spec: ModelSpec, request: CompletionRequest, seconds: float) -> Completion:
        session, url = self._session(spec)
        try:
            async with session.post(
                url, json=self._body(spec, request), timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                _raise_for_status(spec, response, seconds)
                body = await response.read()
        except TimeoutError as exc:
            raise ProviderTimeout(f"{spec.name}: upstream timed out") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"{spec.name}: {type(exc).__name__}", retryable=True) from exc
        return _parse(spec, body)

    async def _open(
        self, spec: ModelSpec, request: CompletionRequest, seconds: float
    ) -> aiohttp.ClientResponse:
        """Send a streaming request and return the response once its status line arrived (200 only)."""
        body = {**self._body(spec, request), "stream": True, "stream_options": {"include_usage": True}}
        session, url = self._session(spec)
        # No total: a long answer that keeps arriving is not cut off; each read waits at most ``seconds``.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        try:
            async with asyncio.timeout(seconds):
                response = await session.post(url, json=body, timeout=timeout)
        except TimeoutError as exc:
            raise ProviderTimeout(f"{spec.name}: upstream timed out") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"{spec.name}: {type(exc).__name__}", retryable=True) from exc
        if response.status != 200:
            response.release()
        _raise_for_status(spec, response, seconds)
        return response

    async def close(self) -> None:
        """Close every pooled session."""
        await asyncio.gather(*(session.close() for session in self._sessions.values()))
        self._sessions.clear()


def _raise_for_status(spec: ModelSpec, response: aiohttp.ClientResponse, seconds: float) -> None:
    if response.status != 200:
        raise ProviderError(
            f"{spec.name}: upstream answered {response.status}",
            retryable=response.status in _RETRY_STATUS,
            status=response.status,
            retry_after=_retry_after(response, cap=seconds),
        )


def _estimate_prompt_tokens(request: CompletionRequest) -> int:
    if request.messages:
        return sum(estimate_tokens(str(m.get("content") or "")) for m in request.messages)
    return estimate_tokens(request.system) + estimate_tokens(request.prompt)


async def _sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The ``data:`` payloads of a Server-Sent Events body (multi-line events joined, comments skipped)."""
    lines: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _parse_chunk(spec: ModelSpec, data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise ProviderError(f"{spec.name}: malformed stream chunk", retryable=False) from exc
    if not isinstance(event, dict):
        raise ProviderError(f"{spec.name}: malformed stream chunk", retryable=False)
    if "error" in event:
        raise ProviderError(f"{spec.name}: upstream reported an error mid-stream", retryable=False)
    return event


def _parse(spec: ModelSpec, body: bytes) -> Completion:
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            text=str(choice["message"]["content"] or ""),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"{spec.name}: malformed completion", retryable=False) from exc
