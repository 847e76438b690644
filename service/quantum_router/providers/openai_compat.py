"""OpenAI-compatible Chat Completions over pooled HTTP (OpenAI, vLLM, Ollama, llama.cpp, TGI, ...)."""

from __future__ import annotations

import asyncio
import os
import random

import httpx

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import Completion, CompletionRequest, ProviderError, ProviderTimeout

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        return None


class OpenAICompatibleProvider:
    """One pooled ``httpx.AsyncClient`` per upstream base URL; retries 429/5xx with jittered backoff."""

    def __init__(self, models: dict[str, ModelSpec], max_retries: int, backoff_seconds: float) -> None:
        self._models = models
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._rng = random.Random()

    def _client(self, spec: ModelSpec) -> httpx.AsyncClient:
        assert spec.base_url is not None  # the catalog validates this
        base = spec.base_url.rstrip("/")
        client = self._clients.get(base)
        if client is None:
            headers = {}
            key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            client = httpx.AsyncClient(
                base_url=base,
                headers=headers,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            self._clients[base] = client
        return client

    async def complete(self, request: CompletionRequest) -> Completion:
        """POST /chat/completions, retrying retryable failures within the request's timeout."""
        spec = self._models[request.model]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_seconds
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderTimeout(f"{spec.name}: no answer within {request.timeout_seconds:.1f}s")
            try:
                return await self._once(spec, request, remaining)
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

    async def _once(self, spec: ModelSpec, request: CompletionRequest, seconds: float) -> Completion:
        body = {
            "model": spec.upstream_model or spec.name,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        try:
            response = await self._client(spec).post("/chat/completions", json=body, timeout=seconds)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{spec.name}: upstream timed out") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{spec.name}: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            raise ProviderError(
                f"{spec.name}: upstream answered {response.status_code}",
                retryable=response.status_code in _RETRY_STATUS,
                status=response.status_code,
                retry_after=_retry_after(response, cap=seconds),
            )
        return _parse(spec, response)

    async def close(self) -> None:
        """Close every pooled client."""
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()


def _parse(spec: ModelSpec, response: httpx.Response) -> Completion:
    try:
        data = response.json()
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
