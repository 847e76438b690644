"""Throttles on authentication: login per client address, failed credentials per client address, and a
negative cache that keeps made-up API keys away from the database."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from quantum_router.ratelimit import Budget, MemoryRateLimiter
from quantum_router.users import create_api_key
from tests.conftest import ADMIN_PASSWORD, ClientFactory

_BODY = {"prompt": "hi", "persona": "developer", "task_type": "chat"}


def _from(client: TestClient, address: str) -> TestClient:
    """Another client of the same running app, connecting from ``address``."""
    return TestClient(client.app, client=(address, 40000), raise_server_exceptions=False)


def _api_key_queries(client: TestClient) -> list[str]:
    """Every statement on the API-key table from now on, as the database receives them. (Not pool checkouts:
    the job maintenance's first round may check a connection out at any moment after startup.)"""
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_keys" in statement:
            seen.append(statement)

    engine = client.app.state.services.db.primary.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", _record)
    return seen


def _made_up_key() -> str:
    return f"qr_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def _comparable(response: Any) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "x-process-time")}
    return response.status_code, response.json(), headers


def test_guessing_a_users_password_does_not_lock_that_user_out(client_factory: ClientFactory) -> None:
    client = client_factory(login_rate_limit_burst=3, login_rate_limit_per_minute=1)
    attacker = _from(client, "203.0.113.5")
    codes = [
        attacker.post("/v1/auth/login", json={"username": "admin", "password": f"guess{i}"}).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]
    victim = _from(client, "198.51.100.7")
    assert (
        victim.post("/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code
        == 200
    )


def test_failed_api_keys_are_throttled_per_address_before_the_database(client_factory: ClientFactory) -> None:
    client = client_factory(auth_failure_burst=3, auth_failures_per_minute=1)
    attacker = _from(client, "203.0.113.9")
    queries = _api_key_queries(client)
    codes = [
        attacker.post("/v1/execute", json=_BODY, headers={"X-API-Key": _made_up_key()}) for _ in range(3)
    ]
    assert [r.status_code for r in codes] == [401, 401, 401]
    assert len(queries) == 3  # each made-up key looked up once
    throttled = [
        attacker.post("/v1/execute", json=_BODY, headers={"X-API-Key": _made_up_key()}) for _ in range(20)
    ]
    assert {r.status_code for r in throttled} == {429}
    assert int(throttled[0].headers["retry-after"]) >= 1
    assert len(queries) == 3, "a throttled address still reached the database"
    # Other addresses are not affected.
    key = client.portal.call(create_api_key, client.app.state.services.db, "admin", "ok")  # type: ignore[union-attr,attr-defined]
    assert (
        _from(client, "198.51.100.8").post("/v1/execute", json=_BODY, headers={"X-API-Key": key}).status_code
        == 200
    )


def test_an_unknown_key_prefix_reaches_the_database_once(client: TestClient) -> None:
    key = _made_up_key()
    queries = _api_key_queries(client)
    for _ in range(6):
        assert client.post("/v1/execute", json=_BODY, headers={"X-API-Key": key}).status_code == 401
    assert len(queries) == 1, queries


def test_unknown_wrong_and_malformed_keys_get_the_same_answer(client: TestClient) -> None:
    key = client.portal.call(create_api_key, client.app.state.services.db, "admin", "real")  # type: ignore[union-attr,attr-defined]
    wrong_secret = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    answers = [
        _comparable(client.post("/v1/execute", json=_BODY, headers={"X-API-Key": credential}))
        for credential in (_made_up_key(), wrong_secret, "qr_short", "qr_" + "0" * 12 + "_x")
    ]
    assert answers[0][0] == 401
    assert answers[0][1]["detail"] == "invalid API key"
    assert all(answer == answers[0] for answer in answers), answers


async def test_a_throttled_bucket_is_not_forgotten_when_many_other_clients_come_and_go() -> None:
    limiter = MemoryRateLimiter(per_minute=600, burst=60, max_principals=100)
    slow = Budget(per_minute=1, burst=1)
    assert (await limiter.hit("victim-of-a-throttle", slow)).allowed
    assert not (await limiter.hit("victim-of-a-throttle", slow)).allowed
    instant = Budget(per_minute=60_000_000, burst=1)  # refills within a microsecond: as good as forgotten
    for i in range(1000):
        await limiter.hit(f"passer-by-{i}", instant)
    assert not (await limiter.hit("victim-of-a-throttle", slow)).allowed
