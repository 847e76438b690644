"""Dependencies as ``Annotated`` aliases, so route signatures stay short and tests can override them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from quantum_router.api.errors import HTTPProblem, rate_limited
from quantum_router.auth.authenticator import TooManyFailures
from quantum_router.auth.tokens import InvalidCredentials, Principal
from quantum_router.context import Services
from quantum_router.drain import Drain

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


# The dependencies are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in
# its thread pool, a thread hop per request for a lookup (1.3 % of the CPU of a cache miss under load).
async def get_services(request: Request) -> Services:
    """The services built in the lifespan."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_drain(request: Request) -> Drain:
    """Whether the server has begun a graceful shutdown (set by ``server.DrainingServer``)."""
    drain: Drain = request.app.state.drain
    return drain


DrainDep = Annotated[Drain, Depends(get_drain)]


async def current_principal(request: Request) -> Principal:
    """Authenticate by bearer JWT, bearer API key or ``X-API-Key``; 401 otherwise (429 for an address that
    failed too often).

    It reads the headers and services from the request itself rather than through ``Header()`` and
    ``ServicesDep`` parameters: on a cache hit FastAPI's solving and validating of those sub-dependencies
    cost more CPU than the authentication. The OpenAPI document still shows both credentials
    (``api.openapi_security``)."""
    services: Services = request.app.state.services
    headers = request.headers
    credential = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if credential is None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPProblem(401, "use 'Authorization: Bearer <token>'", "unauthenticated", _UNAUTHORIZED)
        credential = value.strip()
    if not credential:
        raise HTTPProblem(401, "authentication required", "unauthenticated", _UNAUTHORIZED)
    client = request.scope.get("client")  # (host, port), as ``request.client`` has it, without its copy
    try:
        principal = await services.authenticator.authenticate(credential, client[0] if client else None)
    except InvalidCredentials as exc:
        raise HTTPProblem(401, str(exc), "unauthenticated", _UNAUTHORIZED) from exc
    except TooManyFailures as exc:
        raise rate_limited(exc.verdict, str(exc)) from exc
    verdict = await services.limiter.hit(f"user:{principal.user_id}")
    if not verdict.allowed:
        raise rate_limited(verdict, "rate limit exceeded")
    return principal


#: The caller, authenticated and after taking a token from its rate-limit bucket (429 with Retry-After
#: when empty).
PrincipalDep = Annotated[Principal, Depends(current_principal)]
