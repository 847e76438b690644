"""Request id, X-Process-Time, body-size guard, slow-request log, the request-duration histogram and the
in-flight gauge.

A plain ASGI middleware rather than ``BaseHTTPMiddleware``: it adds no task or stream copy per request.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantum_router.metrics import Metrics

log = logging.getLogger("quantum_router.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Probes and scrapes are not load: counting them in flight would make an idle replica look busy to the
# autoscaler.
_NOT_LOAD = frozenset({"/metrics", "/livez", "/readyz"})


class RequestContextMiddleware:
    """Wraps every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, slow_seconds: float, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.slow_seconds = slow_seconds
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] in _NOT_LOAD:
            await self._handle(scope, receive, send)
        else:
            # Decremented however the request ends, cancellation at the shutdown deadline included.
            with self.metrics.inflight_requests.track_inprogress():
                await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"x-process-time", f"{time.perf_counter() - started:.6f}".encode()),
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            await self._too_large(send_wrapper)
        else:
            await self.app(scope, receive, send_wrapper)
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.request_duration.labels(template, scope["method"], str(status)).observe(elapsed)
        if elapsed > self.slow_seconds:
            log.warning(
                "slow request %s %s took %.3fs (status %d, id %s)",
                scope["method"],
                template,
                elapsed,
                status,
                request_id,
            )

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_body_bytes} bytes", "reason": "too_large"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
