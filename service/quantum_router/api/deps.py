"""Dependencies as ``Annotated`` aliases, so route signatures stay short and tests can override them."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.api.errors import HTTPProblem, rate_limited
from quantum_router.auth.tokens import (
    InvalidCredentials,
    Principal,
    digest_api_key,
    digests_match,
    parse_api_key,
)
from quantum_router.auth.tokens import verify_token as verify_jwt
from quantum_router.context import Services
from quantum_router.db import store
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


async def _principal_from_api_key(services: Services, key: str) -> Principal:
    cache = services.api_key_cache
    digest = digest_api_key(key)
    hit = cache.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    prefix = parse_api_key(key)

    async def _lookup(session: AsyncSession) -> Principal:
        row = await store.api_key_by_prefix(session, prefix)
        if row is None:
            raise InvalidCredentials("unknown API key")
        api_key, user = row
        if api_key.revoked or user.disabled or not digests_match(api_key.key_hash, digest):
            raise InvalidCredentials("invalid API key")
        return Principal(user.id, user.username, tuple(user.roles), "api_key")

    principal = await services.db.read_primary(_lookup)
    if len(cache) > 10_000:
        cache.clear()
    cache[digest] = (time.monotonic() + services.settings.api_key_cache_seconds, principal)
    return principal


async def current_principal(
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """Authenticate by bearer JWT, bearer API key or ``X-API-Key``; 401 otherwise."""
    credential = x_api_key
    if credential is None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPProblem(401, "use 'Authorization: Bearer <token>'", "unauthenticated", _UNAUTHORIZED)
        credential = value.strip()
    if not credential:
        raise HTTPProblem(401, "authentication required", "unauthenticated", _UNAUTHORIZED)
    try:
        if credential.startswith("qr_"):
            return await _principal_from_api_key(services, credential)
        return verify_jwt(services.jwt_secret, services.settings.jwt_issuer, credential)
    except InvalidCredentials as exc:
        raise HTTPProblem(401, str(exc), "unauthenticated", _UNAUTHORIZED) from exc


async def rate_limited_principal(
    services: ServicesDep, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """The caller, after taking a token from its rate-limit bucket (429 with Retry-After when empty)."""
    verdict = await services.limiter.hit(f"user:{principal.user_id}")
    if not verdict.allowed:
        raise rate_limited(verdict, "rate limit exceeded")
    return principal


PrincipalDep = Annotated[Principal, Depends(rate_limited_principal)]
