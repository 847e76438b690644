"""GET /metrics: Prometheus exposition (behind QR_METRICS_TOKEN when set; on QR_METRICS_PORT instead when
that is set)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quantum_router.api.deps import ServicesDep
from quantum_router.api.errors import HTTPProblem
from quantum_router.metrics_port import UNAUTHORIZED_DETAIL, bearer_matches

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Every metric of this process (of every worker process, when serving with several)."""
    token = services.settings.metrics_token
    if token is not None and not bearer_matches(authorization, token.get_secret_value()):
        raise HTTPProblem(401, UNAUTHORIZED_DETAIL, "unauthenticated", {"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(services.metrics.exposition), media_type=CONTENT_TYPE_LATEST)
