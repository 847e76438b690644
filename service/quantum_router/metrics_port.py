"""Access to the Prometheus exposition: an optional bearer token, and an optional port of its own.

Production deployments keep metrics off the public port (a separate port that only the scrape network
reaches) or behind a token; a local run keeps ``/metrics`` open on the service's own port.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from quantum_router.settings import Settings

UNAUTHORIZED_DETAIL = "metrics need Authorization: Bearer <QR_METRICS_TOKEN>"
_UNAUTHORIZED_BODY = json.dumps({"detail": UNAUTHORIZED_DETAIL, "reason": "unauthenticated"}).encode()


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def start_metrics_server(registry: CollectorRegistry, settings: Settings) -> WSGIServer | None:
    """Serve ``registry`` on ``QR_HOST:QR_METRICS_PORT`` from a daemon thread (any path; behind
    ``QR_METRICS_TOKEN`` when set); None without a metrics port. ``shutdown()`` on the result stops it."""
    if settings.metrics_port is None:
        return None
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    exposition = make_wsgi_app(registry)

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token is not None and not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized", [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")]
            )
            return [_UNAUTHORIZED_BODY]
        result: Iterable[bytes] = exposition(environ, start_response)
        return result

    server = make_server(
        settings.host, settings.metrics_port, guarded, ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
    return server
