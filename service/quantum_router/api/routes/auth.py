"""POST /v1/auth/login: username and password for a bearer token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.api.deps import ServicesDep
from quantum_router.api.errors import HTTPProblem, rate_limited
from quantum_router.api.schemas import ErrorResponse, LoginRequest, TokenResponse
from quantum_router.auth.authenticator import client_key
from quantum_router.auth.passwords import verify_password
from quantum_router.auth.tokens import issue_token
from quantum_router.db import store
from quantum_router.db.models import User
from quantum_router.ratelimit import Budget

router = APIRouter(tags=["auth"])


@router.post(
    "/v1/auth/login",
    response_model=TokenResponse,
    responses={401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokenResponse:
    """Exchange credentials for a JWT; wrong username and wrong password look the same."""
    # Per client address, not per username: a budget per username would let anyone lock a chosen user out.
    address = client_key(request.client.host if request.client else None)
    settings = services.settings
    budget = Budget(settings.login_rate_limit_per_minute, settings.login_rate_limit_burst)
    verdict = await services.limiter.hit(f"login:{address}", budget)
    if not verdict.allowed:
        raise rate_limited(verdict, "too many login attempts")

    async def _find(session: AsyncSession) -> User | None:
        return await store.user_by_name(session, body.username)

    user = await services.db.read_primary(_find)
    stored_hash = user.password_hash if user is not None and not user.disabled else None
    # Argon2 is deliberately slow; run it off the event loop, and for an unknown or disabled user too (against
    # a dummy hash), so the answer's timing does not tell which usernames exist.
    matches = await asyncio.to_thread(verify_password, stored_hash, body.password)
    if user is None or not matches:
        raise HTTPProblem(
            401, "invalid username or password", "unauthenticated", {"WWW-Authenticate": "Bearer"}
        )
    token = issue_token(
        services.jwt_secret,
        settings.jwt_issuer,
        settings.jwt_ttl_seconds,
        user.id,
        user.username,
        list(user.roles),
    )
    return TokenResponse(access_token=token, expires_in=settings.jwt_ttl_seconds)
