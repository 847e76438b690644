"""Signed access tokens (JWT, HS256) and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

API_KEY_PREFIX = "qr_"


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    user_id: str
    username: str
    roles: tuple[str, ...]
    via: str  # "token" or "api_key"
    issued_at: int | None = None  # a token's ``iat`` (seconds since the epoch); None for an API key
    expires_at: int | None = None  # a token's ``exp`` (seconds since the epoch); None for an API key


class InvalidCredentials(Exception):
    """The credential is missing, malformed, expired or revoked."""


def issue_token(
    secret: str, issuer: str, ttl_seconds: int, user_id: str, username: str, roles: list[str]
) -> str:
    """A JWT with subject, roles, issuer and expiry."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "name": username,
        "roles": roles,
        "iss": issuer,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, issuer: str, token: str) -> Principal:
    """Check signature, issuer and expiry."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=issuer, options={"require": ["exp", "iss", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidCredentials(f"invalid token: {type(exc).__name__}") from exc
    return Principal(
        str(claims["sub"]),
        str(claims.get("name", "")),
        tuple(claims.get("roles", [])),
        "token",
        int(claims.get("iat", 0)),
        int(claims["exp"]),
    )


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (full key shown once to the user, lookup prefix, digest to store)."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, digest_api_key(key)


def digest_api_key(key: str) -> str:
    """SHA-256 of a key; keys carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_key(key: str) -> str:
    """The lookup prefix of a well-formed key."""
    if not key.startswith(API_KEY_PREFIX):
        raise InvalidCredentials("not an API key")
    prefix, _, rest = key[len(API_KEY_PREFIX) :].partition("_")
    if len(prefix) != 12 or not rest:
        raise InvalidCredentials("malformed API key")
    return prefix


def digests_match(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
