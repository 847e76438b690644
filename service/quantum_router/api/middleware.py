"""Request id, X-Process-Time, body-size guard (declared and chunked bodies alike), slow-request log, the
request-duration histogram and the in-flight gauge.

A plain ASGI middleware rather than ``BaseHTTPMiddleware``: it adds no task or stream copy per request.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantum_router.api.errors import internal_error
from quantum_router.metrics import Metrics

log = logging.getLogger("quantum_router.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Probes and scrapes are not load: counting them in flight would make an idle replica look busy to the
# autoscaler.
_NOT_LOAD = frozenset({"/metrics", "/livez", "/readyz"})
# Any token is a valid HTTP method: labelling others by name would let clients create series at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """``method`` for the standard methods, else ``other``."""
    return method if method in _METHODS else "other"


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
        responded = False
        rejected = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, responded, rejected
            if rejected:
                return  # the 413 has been sent; the app's own answer to the cut-off body goes nowhere
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
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
        received = 0

        async def receive_limited() -> Message:
            # Content-Length is only a claim, and a chunked upload has none: count what actually arrives,
            # so no body past the limit is ever held in memory, authenticated or not.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not responded:
                        await self._too_large(send_wrapper)
                    # The app sees a client that went away: it stops reading, and whatever it still tries
                    # to answer is dropped by send_wrapper. The server discards the rest of the upload.
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        try:
            if length > self.max_body_bytes:
                await self._too_large(send_wrapper)
            else:
                await self.app(scope, receive_limited, send_wrapper)
        except Exception:
            if rejected:
                # The app failed to read a body we cut off after answering 413: expected, not an error.
                self._observe(scope, status, started, request_id)
                return
            # The app's handler for unexpected errors answers from outside this middleware, where the
            # response would get no request id: answer here (it then only logs), count it, and re-raise.
            if not responded:
                await internal_error()(scope, receive, send_wrapper)
            self._observe(scope, status, started, request_id)
            raise
        self._observe(scope, status, started, request_id)

    def _observe(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.request_duration.labels(template, method_label(scope["method"]), str(status)).observe(
            elapsed
        )
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
