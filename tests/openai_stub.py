"""A small OpenAI-compatible Chat Completions server for tests and benchmarks, run on loopback.

Behaviour is chosen per request by the upstream model name, e.g. ``fail-2-then-ok`` (two 503s then success),
``status-429`` (always 429 with Retry-After), ``delay-0.5`` (answer after 0.5 s), ``bad-json``, or anything
else for an immediate canned completion. The server counts calls per model so tests can check retries.

With ``stream: true`` the canned answer streams word by word in OpenAI's chunk format; ``stream-slow-0.2``
waits 0.2 s before each chunk and records when its stream ended (``stream_ended``), ``stream-break`` sends
one chunk and then drops the connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ports import free_port


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }


class StubServer:
    """Runs the stub in a background thread on a free loopback port."""

    def __init__(self, port: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.stream_ended: dict[str, float] = {}
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StubServer:
        """Start and wait until it accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stub server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        model = str(body.get("model", ""))
        self.calls[model] += 1
        n = self.calls[model]
        if model.startswith("fail-"):
            failures = int(model.split("-")[1])
            if n <= failures:
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        elif model.startswith("status-"):
            status = int(model.split("-")[1])
            return JSONResponse(
                {"error": {"message": "no"}}, status_code=status, headers={"Retry-After": "0"}
            )
        elif model.startswith("delay-"):
            await asyncio.sleep(float(model.split("-")[1]))
        elif model == "bad-json":
            return PlainTextResponse("this is not json")
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(model, usage), media_type="text/event-stream")
        return JSONResponse(_completion(model, f"stub answer from {model}"))

    async def _stream(self, model: str, include_usage: bool) -> AsyncIterator[bytes]:
        pause = float(model.rsplit("-", 1)[1]) if model.startswith("stream-slow-") else 0.0
        words = f"stub answer from {model}".split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(pause)
            delta = {"content": word if i == 0 else " " + word}
            yield _sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})  # fmt: skip
            if model == "stream-break":
                raise RuntimeError("the stub drops the connection mid-stream")
        await asyncio.sleep(pause)
        yield _sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})  # fmt: skip
        if include_usage:
            usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
            yield _sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model,
                        "choices": [], "usage": usage})  # fmt: skip
        yield b"data: [DONE]\n\n"
        self.stream_ended[model] = time.monotonic()


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"
