"""What the experience log records as a request's quality: observations only, and where each came from."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from quantum_router.db import store
from quantum_router.routing import Decision
from tests.conftest import ClientFactory, login, stored_experience

CHAT = {"prompt": "What is a monad?", "persona": "developer", "task_type": "chat"}


@pytest.fixture
def client(client_factory: ClientFactory) -> TestClient:
    """Experiences acknowledged once committed, so a test reads its row right after the response."""
    return client_factory(experience_acknowledge="commit")


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    return login(client)


def _execute(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/execute", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_lone_answer_logs_no_quality_because_nothing_was_observed(
    client: TestClient, auth: dict[str, str]
) -> None:
    result = _execute(client, auth, CHAT)
    row = stored_experience(client, result["experience_id"])
    assert (row.quality, row.quality_source, row.reward) == (None, None, None)
    # The response still shows the scorer's estimate that picked the answer.
    assert result["variations"][0]["score"] > 0


def test_two_answers_log_their_agreement(client: TestClient, auth: dict[str, str]) -> None:
    result = _execute(client, auth, {**CHAT, "options": {"variations": 2, "model": "cheap"}})
    row = stored_experience(client, result["experience_id"])
    assert row.quality_source == "agreement"
    assert row.quality in (1.0, 0.5)  # "[simulated] answer: X": the same X, or two different ones
    assert row.reward is not None and row.reward < row.quality


def test_a_cache_hit_is_not_an_observation(client: TestClient, auth: dict[str, str]) -> None:
    _execute(client, auth, {**CHAT, "options": {"variations": 2, "model": "cheap"}})
    hit = _execute(client, auth, {**CHAT, "options": {"variations": 2, "model": "cheap"}})
    assert hit["cache"] == "hit"
    assert stored_experience(client, hit["experience_id"]).quality_source is None


def test_code_that_does_not_parse_is_logged_as_a_verified_zero(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    execution = services.execution
    original = execution._summarise

    def broken_code(request: Any, features: Any, decision: Decision, outcomes: list[Any], t0: float) -> Any:
        from dataclasses import replace

        bad = [
            replace(o, completion=replace(o.completion, text="```python\ndef f(:\n```")) if o.ok else o
            for o in outcomes
        ]
        return original(request, features, decision, bad, t0)

    execution._summarise = broken_code
    auth = login(client)
    body = {"prompt": "reverse a list", "persona": "developer", "task_type": "code_generation"}
    result = _execute(client, auth, body)
    assert result["variations"][0]["score"] == 0.0
    row = stored_experience(client, result["experience_id"])
    assert (row.quality, row.quality_source) == (0.0, "verifier")


def test_a_failed_choice_is_logged_as_a_failure(client: TestClient) -> None:
    execution = client.app.state.services.execution  # type: ignore[attr-defined]
    original = execution.route

    def route_to_broken(request: object) -> tuple[object, Decision]:
        features, _ = original(request)
        return features, Decision("broken", ["broken", "cheap"], 1.0, False, {"broken": 0.5})

    execution.route = route_to_broken
    result = _execute(client, login(client), CHAT)
    row = stored_experience(client, result["experience_id"])
    assert (row.action, row.quality, row.quality_source) == ("broken", 0.0, "failure")


def test_a_rating_becomes_the_label_and_a_later_judge_verdict_does_not_replace_it(
    client: TestClient, auth: dict[str, str]
) -> None:
    result = _execute(client, auth, CHAT)
    rated = client.post(
        "/v1/feedback", json={"experience_id": result["experience_id"], "rating": 5}, headers=auth
    )
    assert rated.status_code == 200
    row = stored_experience(client, result["experience_id"])
    assert (row.quality, row.quality_source) == (1.0, "rating")

    services = client.app.state.services  # type: ignore[attr-defined]

    async def _judge() -> bool:
        async with services.db.write_session() as session:
            return await store.set_judged_quality(session, result["experience_id"], 0.0, -1.0)

    assert client.portal.call(_judge) is False  # type: ignore[union-attr]
    row = stored_experience(client, result["experience_id"])
    assert (row.quality, row.quality_source, row.reward) == (1.0, "rating", rated.json()["reward"])
