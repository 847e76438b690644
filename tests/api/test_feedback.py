import pytest
from fastapi.testclient import TestClient

from quantum_router.users import create_user
from tests.conftest import login

SIMPLE = {"prompt": "Summarise the design", "persona": "developer", "task_type": "chat"}


def test_owner_rates_an_experience_and_the_reward_follows_the_rating(
    client: TestClient, auth: dict[str, str]
) -> None:
    experience_id = client.post("/v1/execute", json=SIMPLE, headers=auth).json()["experience_id"]
    low = client.post("/v1/feedback", json={"experience_id": experience_id, "rating": 1}, headers=auth)
    high = client.post(
        "/v1/feedback", json={"experience_id": experience_id, "rating": 5, "comment": "great"}, headers=auth
    )
    assert low.status_code == high.status_code == 200
    assert high.json()["reward"] - low.json()["reward"] == pytest.approx(1.0)


def test_feedback_on_someone_elses_or_a_missing_experience(client: TestClient, auth: dict[str, str]) -> None:
    experience_id = client.post("/v1/execute", json=SIMPLE, headers=auth).json()["experience_id"]
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(create_user, services.db, "eve", "eve-password-1", ["user"])  # type: ignore[union-attr]
    eve = login(client, "eve", "eve-password-1")
    assert (
        client.post(
            "/v1/feedback", json={"experience_id": experience_id, "rating": 3}, headers=eve
        ).status_code
        == 403
    )
    missing = client.post("/v1/feedback", json={"experience_id": "nope", "rating": 3}, headers=auth)
    assert missing.status_code == 404
    bad = client.post("/v1/feedback", json={"experience_id": experience_id, "rating": 9}, headers=auth)
    assert bad.status_code == 422


def test_history_lists_only_the_callers_experiences_newest_first(
    client: TestClient, auth: dict[str, str]
) -> None:
    ids = [
        client.post("/v1/execute", json={**SIMPLE, "prompt": f"p{i}"}, headers=auth).json()["experience_id"]
        for i in range(3)
    ]
    history = client.get("/v1/experiences?limit=2", headers=auth).json()
    assert [h["experience_id"] for h in history] == ids[::-1][:2]
    assert history[0]["persona"] == "developer"
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(create_user, services.db, "mallory", "mallory-pass-1", ["user"])  # type: ignore[union-attr]
    assert client.get("/v1/experiences", headers=login(client, "mallory", "mallory-pass-1")).json() == []
    assert client.get("/v1/experiences?limit=0", headers=auth).status_code == 422
