"""From a credential to a principal: JWTs and API keys, the caches in front of the database, and the
per-address throttle on failures.

Revocation reaches every replica through the database within ``QR_API_KEY_CACHE_SECONDS``: a revoked
key, a disabled user's keys and tokens, and tokens issued before a password rotation are refused once
the cached entry has expired.

Every refusal of an API key says the same thing (unknown, wrong secret, revoked, owner disabled), so a
client cannot tell which keys exist. Failures (of keys and of tokens) are counted per client address; once
an address has spent its failure budget, its API keys that would need a database round trip get 429
without one. (A token's signature is checked before any lookup, so forged tokens never reach it.)
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.auth.tokens import (
    InvalidCredentials,
    Principal,
    digest_api_key,
    digests_match,
    parse_api_key,
)
from quantum_router.auth.tokens import verify_token as verify_jwt
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.ratelimit import Budget, RateLimiter, Verdict
from quantum_router.settings import Settings

V = TypeVar("V")
INVALID_API_KEY = "invalid API key"
# Entries beyond this are dropped (all at once: both caches are only shortcuts in front of the database).
_CACHE_BOUND = 10_000


class TooManyFailures(Exception):
    """The client address has failed to authenticate too often; ``verdict`` says when to retry."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__("too many failed authentication attempts")
        self.verdict = verdict


def client_key(host: str | None) -> str:
    """The rate-limit key of a client address: the address itself, or its /64 for IPv6 (one subscriber
    usually holds a whole /64, so single IPv6 addresses cost an attacker nothing)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a Unix socket, a test client): its name is the best key there is
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Authenticator:
    """Verifies bearer JWTs and API keys; one per service."""

    def __init__(self, db: Database, settings: Settings, jwt_secret: str, limiter: RateLimiter) -> None:
        self._db = db
        self._settings = settings
        self._jwt_secret = jwt_secret
        self._limiter = limiter
        self._failures = Budget(settings.auth_failures_per_minute, settings.auth_failure_burst)
        # Validated keys by digest, so a key costs a database round trip once per cache period.
        self._keys: dict[str, tuple[float, Principal]] = {}
        # Prefixes the database does not know, so a stream of made-up keys does not reach it each time.
        self._unknown_prefixes: dict[str, float] = {}
        # Per user id: until when the entry holds, and the token cut-off (None: refuse every token).
        self._users: dict[str, tuple[float, float | None]] = {}
        # Tokens whose signature and claims have been checked: a client sends the same token on every
        # request, and checking it again was 5 % of a cache hit's CPU. Expiry is still checked each time.
        self._verified: dict[str, Principal] = {}

    async def authenticate(self, credential: str, client: str | None) -> Principal:
        """The principal behind ``credential`` (a JWT or an API key) sent from address ``client``.

        :raises InvalidCredentials: the credential is not valid (401).
        :raises TooManyFailures: the address has no failure budget left (429).
        """
        try:
            if credential.startswith("qr_"):
                return await self._api_key(credential, client_key(client))
            return await self._token(credential)
        except InvalidCredentials:
            # The address is only needed to count failures: parsing it for every valid token costs.
            await self._limiter.hit(f"authfail:{client_key(client)}", self._failures)
            raise

    async def _token(self, token: str) -> Principal:
        """A signed, unexpired token whose user is still enabled and issued it after their last password
        change. The user's state is cached like API keys: a disable takes effect within the cache period."""
        principal = self._verified.get(token)
        if principal is None or (principal.expires_at or 0) <= time.time():
            principal = verify_jwt(self._jwt_secret, self._settings.jwt_issuer, token)
            _remember(self._verified, token, principal)
        now = time.monotonic()
        hit = self._users.get(principal.user_id)
        if hit is not None and hit[0] > now:
            valid_after = hit[1]
        else:
            valid_after = await self._db.read_primary(lambda s: self._token_cutoff(s, principal.user_id))
            expires = now + self._settings.api_key_cache_seconds
            _remember(self._users, principal.user_id, (expires, valid_after))
        if valid_after is None or (principal.issued_at or 0) < valid_after:
            raise InvalidCredentials("invalid token: revoked")
        return principal

    @staticmethod
    async def _token_cutoff(session: AsyncSession, user_id: str) -> float | None:
        """Seconds since the epoch before which the user's tokens are refused; None: refuse all (the user
        is disabled or gone)."""
        user = await store.user_by_id(session, user_id)
        if user is None or user.disabled:
            return None
        cutoff = user.tokens_valid_after
        if cutoff is None:
            return 0.0
        # SQLite hands timestamps back without their zone; they were written in UTC.
        return (cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=UTC)).timestamp()

    async def _api_key(self, key: str, address: str) -> Principal:
        digest = digest_api_key(key)
        now = time.monotonic()
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        verdict = await self._limiter.hit(f"authfail:{address}", self._failures, cost=0)
        if not verdict.allowed:
            raise TooManyFailures(verdict)
        try:
            prefix = parse_api_key(key)
        except InvalidCredentials as exc:
            raise InvalidCredentials(INVALID_API_KEY) from exc
        if self._unknown_prefixes.get(prefix, 0.0) > now:
            raise InvalidCredentials(INVALID_API_KEY)
        principal = await self._db.read_primary(lambda session: self._lookup(session, prefix, digest))
        ttl = self._settings.api_key_cache_seconds
        if principal is None:
            _remember(self._unknown_prefixes, prefix, now + ttl)
            raise InvalidCredentials(INVALID_API_KEY)
        _remember(self._keys, digest, (now + ttl, principal))
        return principal

    @staticmethod
    async def _lookup(session: AsyncSession, prefix: str, digest: str) -> Principal | None:
        """The key's principal; None for an unknown prefix; InvalidCredentials for any other refusal."""
        row = await store.api_key_by_prefix(session, prefix)
        if row is None:
            return None
        api_key, user = row
        if api_key.revoked or user.disabled or not digests_match(api_key.key_hash, digest):
            raise InvalidCredentials(INVALID_API_KEY)
        return Principal(user.id, user.username, tuple(user.roles), "api_key")


def _remember(cache: dict[str, V], key: str, value: V) -> None:
    if len(cache) >= _CACHE_BOUND:
        cache.clear()
    cache[key] = value
