"""Which database errors mean "not now" (answer 503, try another replica) rather than "this is a bug".

Connection failures and timeouts arrive as their own exception types. PostgreSQL's refusals of a healthy
connection arrive as a plain ``DBAPIError`` whose SQLSTATE tells them apart: a server starting up or
shutting down, a statement timeout, a read-only server (a standby, or a primary being demoted), too many
connections. An integrity or syntax error has a SQLSTATE too, and stays a bug.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Errors that mean "the server is unreachable, overloaded or timed out", whatever their SQLSTATE.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
    asyncio.TimeoutError,
)

# SQLSTATE -> what it means here. Class 08 (connection exceptions) is matched by its prefix.
TRANSIENT_SQLSTATES = {
    "57P01": "the server is shutting down",
    "57P02": "the server crashed",
    "57P03": "the server is starting up",
    "57014": "statement timeout",
    "25006": "the server is read-only",
    "53000": "the server is out of resources",
    "53100": "the server's disk is full",
    "53200": "the server is out of memory",
    "53300": "too many connections",
}


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE PostgreSQL sent with ``exc``, if any (asyncpg's, as SQLAlchemy wraps it)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) else None


def unavailable_reason(exc: BaseException) -> str | None:
    """A short, secret-free description when ``exc`` means the database cannot serve now; None for a bug."""
    code = sqlstate(exc)
    if code is not None:
        if code in TRANSIENT_SQLSTATES:
            return f"{TRANSIENT_SQLSTATES[code]} ({code})"
        if code.startswith("08"):
            return f"connection failure ({code})"
    if isinstance(exc, CONNECTION_ERRORS):
        return type(exc).__name__
    return None


# What the engine catches before asking unavailable_reason (a DBAPIError without a transient SQLSTATE is
# re-raised unchanged).
CANDIDATE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, DBAPIError)
