import time

import jwt
import pytest
from fastapi.testclient import TestClient

from quantum_router.api.routes import auth as auth_route
from quantum_router.auth.passwords import verify_password
from tests.conftest import ADMIN_PASSWORD, JWT_SECRET, ClientFactory, login


def test_login_returns_a_bearer_jwt_with_expiry_issuer_subject_and_roles(client: TestClient) -> None:
    response = client.post("/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="quantum-router")
    assert claims["roles"] == ["admin"]
    assert claims["sub"]
    assert claims["exp"] - claims["iat"] == 3600


def test_wrong_password_and_unknown_user_are_both_401(client: TestClient) -> None:
    for username, password in (("admin", "wrong"), ("nobody", ADMIN_PASSWORD)):
        response = client.post("/v1/auth/login", json={"username": username, "password": password})
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid username or password"
        assert ADMIN_PASSWORD not in response.text


def test_unknown_user_costs_one_password_verification_like_a_known_one(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skipping Argon2 for an unknown name would make "no such user" answer several times faster.
    hashes: list[str | None] = []

    def spy(password_hash: str | None, password: str) -> bool:
        hashes.append(password_hash)
        return verify_password(password_hash, password)

    monkeypatch.setattr(auth_route, "verify_password", spy)
    unknown = client.post("/v1/auth/login", json={"username": "nobody", "password": ADMIN_PASSWORD})
    assert unknown.status_code == 401
    assert hashes == [None]  # verified once, against the dummy hash
    known = client.post("/v1/auth/login", json={"username": "admin", "password": "wrong"})
    assert known.status_code == 401
    assert len(hashes) == 2 and hashes[1] is not None


def test_login_needs_both_fields(client: TestClient) -> None:
    response = client.post("/v1/auth/login", json={"username": "admin"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


def test_protected_routes_need_credentials(client: TestClient) -> None:
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
    assert client.post("/v1/execute", json=body).status_code == 401
    bad = client.post("/v1/execute", json=body, headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"
    basic = client.post("/v1/execute", json=body, headers={"Authorization": "Basic YWRtaW46eA=="})
    assert basic.status_code == 401


def test_expired_and_foreign_tokens_are_refused(client: TestClient) -> None:
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "x", "iss": "quantum-router", "exp": now - 10}, JWT_SECRET, algorithm="HS256"
    )
    forged = jwt.encode({"sub": "x", "iss": "quantum-router", "exp": now + 100}, "y" * 48, algorithm="HS256")
    for token in (expired, forged):
        r = client.get("/v1/jobs/abc", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


def test_login_attempts_are_rate_limited_per_client_address(client_factory: ClientFactory) -> None:
    client = client_factory(login_rate_limit_burst=2, login_rate_limit_per_minute=1)
    codes = [
        client.post("/v1/auth/login", json={"username": "admin", "password": "no"}).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]


def test_the_default_login_budget_is_a_handful_of_attempts_not_the_api_budget(client: TestClient) -> None:
    codes = [
        client.post("/v1/auth/login", json={"username": "admin", "password": "no"}).status_code
        for _ in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2


def test_token_from_login_authenticates(client: TestClient) -> None:
    headers = login(client)
    assert client.get("/v1/jobs/unknown", headers=headers).status_code == 404
