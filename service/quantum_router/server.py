"""``quantum-router serve``: uvicorn, with a graceful drain on SIGTERM.

On SIGTERM uvicorn closes its listening socket, gives in-flight requests up to
``QR_SHUTDOWN_GRACE_SECONDS`` to finish, cancels what is left, and only then runs the lifespan's
shutdown. The application is marked as draining in the signal handler, before any of that, so
``/readyz`` answers 503 while requests still run; the lifespan's shutdown would come too late for
readiness to mean anything. (A probe on a new connection is refused once the socket is closed, which
Kubernetes counts as unready too.)
"""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

from quantum_router.drain import Drain
from quantum_router.metrics_port import start_metrics_server
from quantum_router.settings import Settings


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the app as draining as soon as it is told to exit."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """uvicorn's SIGTERM/SIGINT handler: mark the app as draining, then begin uvicorn's shutdown."""
        self._drain.begin()
        super().handle_exit(sig, frame)


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` under ``settings``."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        # The client address per-address limits count: X-Forwarded-For's, from these proxies only.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then drain (see the module docstring); with
    ``QR_METRICS_PORT``, metrics on that port meanwhile."""
    drain: Drain = app.state.drain
    metrics_server = start_metrics_server(app.state.metrics.exposition, settings)
    try:
        DrainingServer(server_config(app, settings), drain).run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
