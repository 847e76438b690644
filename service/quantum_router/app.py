"""The ASGI application: ``create_app(settings)`` wires routes, middleware and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from quantum_router import __version__
from quantum_router.api.deps import current_principal
from quantum_router.api.errors import describe, install_error_handlers
from quantum_router.api.middleware import RequestContextMiddleware
from quantum_router.api.openapi_security import document_credentials, protected_operations
from quantum_router.api.routes import auth, capabilities, chat, execute, feedback, health, history, metrics
from quantum_router.context import start_services, stop_services
from quantum_router.drain import Drain
from quantum_router.metrics import Metrics
from quantum_router.settings import Settings, get_settings

# JSON escaping can grow a prompt up to six-fold (\uXXXX); the prompt limit itself is checked exactly later.
_BODY_OVERHEAD_FACTOR = 6
_BODY_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application; nothing connects until its lifespan starts."""
    settings = settings or get_settings()
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await start_services(settings, app_metrics, describe)
        # Everything built so far lives as long as the process: moved out of the collector's reach, full
        # collections no longer walk it, which shortens the pauses that make up the latency tail.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await stop_services(app.state.services)

    docs = settings.docs_enabled
    app = FastAPI(
        title="Quantum Router",
        version=__version__,
        description="Routes each prompt to the model with the best quality for the cost.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    # Outside the lifespan: the server sets it on SIGTERM, long before the lifespan's shutdown runs.
    app.state.drain = Drain()
    # For a metrics port of its own, which `serve` opens next to the API's.
    app.state.metrics = app_metrics
    # The hot routes first: each request is matched against the routers in this order.
    routers = [m.router for m in (execute, chat, health, capabilities, auth, feedback, history)]
    for router in routers:
        app.include_router(router)
    document_credentials(app, protected_operations(routers, current_principal))
    if settings.metrics_port is None:
        app.include_router(metrics.router)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app_metrics,
        slow_seconds=settings.slow_request_seconds,
        max_body_bytes=settings.max_prompt_bytes * _BODY_OVERHEAD_FACTOR + _BODY_OVERHEAD_BYTES,
    )
    return app
