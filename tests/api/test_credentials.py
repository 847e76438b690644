"""Credentials can be rotated and revoked: the admin password follows QR_ADMIN_PASSWORD, and the CLI
disables users and revokes API keys, effective on a running service within QR_API_KEY_CACHE_SECONDS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from quantum_router.auth.tokens import issue_token
from quantum_router.settings import LOCAL_DEFAULT_ADMIN_PASSWORD, Settings
from quantum_router.users import create_api_key, create_user
from tests.conftest import JWT_SECRET, ClientFactory, login

CACHE_SECONDS = 0.5
_BODY = {"prompt": "hi", "persona": "developer", "task_type": "chat"}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "quantum_router.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _next_second() -> None:
    """Token issue times are whole seconds: make sure the next event is in a later one."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def _status(client: TestClient, headers: dict[str, str]) -> int:
    return client.post("/v1/execute", json=_BODY, headers=headers).status_code


def _creds(username: str, password: str) -> dict[str, str]:
    return {"username": username, "password": password}


def test_a_changed_admin_password_replaces_the_old_one_on_the_next_start(
    client_factory: ClientFactory,
) -> None:
    first = client_factory(admin_password="first-password-123", api_key_cache_seconds=0)
    old_token = login(first, "admin", "first-password-123")
    assert _status(first, old_token) == 200
    _next_second()
    restarted = client_factory(admin_password="second-password-456", api_key_cache_seconds=0)
    assert restarted.post("/v1/auth/login", json=_creds("admin", "first-password-123")).status_code == 401
    new_token = login(restarted, "admin", "second-password-456")
    assert _status(restarted, new_token) == 200
    # Tokens issued with the old password end with it, on every replica.
    assert _status(restarted, old_token) == 401
    assert _status(first, old_token) == 401
    # Starting again with the same password changes nothing: the new token stays valid.
    again = client_factory(admin_password="second-password-456", api_key_cache_seconds=0)
    assert _status(again, new_token) == 200


def test_a_disabled_user_is_refused_everywhere_within_the_cache_period(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    client = client_factory(api_key_cache_seconds=CACHE_SECONDS)
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(create_user, services.db, "bob", "bob-password-1", ["user"])  # type: ignore[union-attr]
    key = client.portal.call(create_api_key, services.db, "bob", "laptop")  # type: ignore[union-attr]
    token = login(client, "bob", "bob-password-1")
    assert (_status(client, token), _status(client, {"X-API-Key": key})) == (200, 200)

    _next_second()  # a token issued in the cut-off's own second is accepted (store._whole_second)
    disabled = _cli(tmp_path, "user", "disable", "bob")
    assert disabled.returncode == 0, disabled.stderr
    time.sleep(CACHE_SECONDS + 0.1)
    assert _status(client, token) == 401
    assert _status(client, {"X-API-Key": key}) == 401
    assert client.post("/v1/auth/login", json=_creds("bob", "bob-password-1")).status_code == 401

    assert _cli(tmp_path, "user", "enable", "bob").returncode == 0
    _next_second()
    assert _status(client, login(client, "bob", "bob-password-1")) == 200
    assert _status(client, token) == 401  # a token from before the disable stays dead
    assert _cli(tmp_path, "user", "disable", "nobody").returncode == 1


def test_a_revoked_api_key_is_refused_within_the_cache_period(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    client = client_factory(api_key_cache_seconds=CACHE_SECONDS)
    services = client.app.state.services  # type: ignore[attr-defined]
    key = client.portal.call(create_api_key, services.db, "admin", "ci")  # type: ignore[union-attr]
    other = client.portal.call(create_api_key, services.db, "admin", "laptop")  # type: ignore[union-attr]
    assert _status(client, {"X-API-Key": key}) == 200

    listed = _cli(tmp_path, "apikey", "list", "admin")
    prefix = key.split("_")[1]
    assert f"{prefix}\tci\t" in listed.stdout and "active" in listed.stdout
    revoked = _cli(tmp_path, "apikey", "revoke", prefix)
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(CACHE_SECONDS + 0.1)
    assert _status(client, {"X-API-Key": key}) == 401
    assert _status(client, {"X-API-Key": other}) == 200
    assert "revoked" in _cli(tmp_path, "apikey", "list", "admin").stdout
    # The whole key works as well as its prefix; an unknown one fails without echoing what was given.
    assert _cli(tmp_path, "apikey", "revoke", other).returncode == 0
    unknown = _cli(tmp_path, "apikey", "revoke", "qr_000000000000_secret-part")
    assert unknown.returncode == 1
    assert "secret-part" not in unknown.stdout + unknown.stderr


def test_production_refuses_the_documented_local_admin_password() -> None:
    with pytest.raises(ValidationError, match="local default"):
        Settings(environment="production", jwt_secret="j" * 40, admin_password=LOCAL_DEFAULT_ADMIN_PASSWORD)
    Settings(environment="production", jwt_secret="j" * 40, admin_password="a-real-secret-password")


def test_a_token_stops_working_when_it_expires_though_it_was_accepted_before(client: TestClient) -> None:
    """Verified tokens are remembered between requests; their expiry is still checked on every one."""
    user_id = jwt.decode(login(client)["Authorization"][7:], options={"verify_signature": False})["sub"]
    token = issue_token(JWT_SECRET, "quantum-router", 2, user_id, "admin", ["admin"])
    headers = {"Authorization": f"Bearer {token}"}
    assert _status(client, headers) == 200
    assert _status(client, headers) == 200  # the second is answered from the remembered verification
    time.sleep(2.05 - time.time() % 1.0)  # past exp: issued in whole seconds, valid while now < exp
    response = client.post("/v1/execute", json=_BODY, headers=headers)
    assert response.status_code == 401
    assert "ExpiredSignature" in response.json()["detail"]


def test_the_openapi_document_names_both_credentials_on_protected_operations(
    client_factory: ClientFactory,
) -> None:
    schema = client_factory(docs_enabled=True).get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    paths = schema["paths"]
    for path, method in (("/v1/execute", "post"), ("/v1/chat/completions", "post"), ("/v1/feedback", "post")):
        assert paths[path][method]["security"] == [{"bearer": []}, {"apiKey": []}]
    for path, method in (("/v1/auth/login", "post"), ("/v1/health", "get")):
        assert "security" not in paths[path][method]
