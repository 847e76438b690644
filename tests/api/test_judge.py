"""A judge grades a sample of answers after they are sent; the verdict becomes the logged quality."""

from __future__ import annotations

import time

import pytest

from quantum_router.catalog import load_catalog
from quantum_router.judge import Budget, judge_prompt, parse_score, rubric
from quantum_router.providers.base import CompletionRequest
from quantum_router.providers.simulated import SimulatedProvider, expected_answer
from tests.conftest import TEST_CATALOG, ClientFactory, login, stored_experience

CHAT = {"prompt": "Explain closures", "persona": "developer", "task_type": "chat"}


@pytest.mark.parametrize(
    ("reply", "score"),
    [("SCORE: 7", 0.7), ("  SCORE: 10\n", 1.0), ("SCORE: 0", 0.0), ("SCORE: 11", None), ("score: 7", None),
     ("SCORE: 7/10", None), ("I think SCORE: 7", None), ("SCORE: 7\nSCORE: 3", None), ("", None)],
)  # fmt: skip
def test_only_an_exact_score_line_is_a_verdict(reply: str, score: float | None) -> None:
    assert parse_score(reply) == score


def test_each_task_type_has_its_own_rubric_with_the_same_reply_format() -> None:
    rubrics = {t: rubric(t) for t in ("code_generation", "code_analysis", "architecture", "chat", "other")}
    assert len(set(rubrics.values())) == 5
    assert all("`SCORE: N`" in r for r in rubrics.values())


def test_the_budget_refuses_what_the_last_hour_cannot_afford() -> None:
    budget = Budget(usd_per_hour=1.0)
    assert budget.reserve(0.6, now=0.0)
    assert not budget.reserve(0.6, now=10.0)
    budget.settle(0.6, 0.1, now=20.0)  # the call cost less than estimated
    assert budget.reserve(0.6, now=30.0)
    assert budget.reserve(0.9, now=3700.0)  # an hour later the first calls no longer count


async def test_the_simulated_judge_sees_the_simulated_truth() -> None:
    models = {m.name: m for m in load_catalog(TEST_CATALOG).models}
    judge = SimulatedProvider(models, time_scale=0.0, judge_noise=0.0)
    prompt = "what is the answer?"
    right, wrong = expected_answer(prompt), "zulu"

    async def verdict(answer: str) -> str:
        text = judge_prompt(prompt, f"[simulated] answer: {answer}")
        request = CompletionRequest("cheap", rubric("chat"), text, 0.0, 8, 1.0, "judge")
        return (await judge.complete(request)).text

    assert await verdict(right) == "SCORE: 10"
    assert await verdict(wrong) == "SCORE: 0"


def test_the_verdict_arrives_after_the_response_which_does_not_wait_for_it(
    client_factory: ClientFactory,
) -> None:
    # The judge is the "slow" model: about 1 s per call, against about 10 ms for the answer itself.
    client = client_factory(
        judge_model="slow", judge_sample_rate=1.0, simulation_judge_noise=0.0, experience_acknowledge="commit"
    )
    auth = login(client)
    started = time.perf_counter()
    response = client.post("/v1/execute", json=CHAT, headers=auth)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 0.5, elapsed
    experience_id = response.json()["experience_id"]
    assert stored_experience(client, experience_id).quality_source is None  # not judged yet

    deadline = time.monotonic() + 10
    while (row := stored_experience(client, experience_id)).quality_source != "judge":
        assert time.monotonic() < deadline, "no verdict"
        time.sleep(0.1)
    assert row.quality in (0.0, 1.0)  # noise off: right or wrong
    assert row.reward == pytest.approx(row.quality - row.cost_penalty - row.latency_penalty)
    metrics = client.get("/metrics").text
    assert 'qr_judge_calls_total{outcome="ok"} 1.0' in metrics
    assert 'qr_cost_usd_total{model="slow"}' in metrics
    assert "qr_judge_cost_usd_total" in metrics


def test_no_budget_no_verdict(client_factory: ClientFactory) -> None:
    client = client_factory(
        judge_model="cheap",
        judge_sample_rate=1.0,
        judge_max_usd_per_hour=0.0,
        experience_acknowledge="commit",
    )
    response = client.post("/v1/execute", json=CHAT, headers=login(client))
    time.sleep(0.3)
    assert stored_experience(client, response.json()["experience_id"]).quality_source is None
    assert 'qr_judge_calls_total{outcome="skipped_budget"} 1.0' in client.get("/metrics").text


def test_unsampled_requests_are_not_judged(client_factory: ClientFactory) -> None:
    client = client_factory(judge_model="cheap", judge_sample_rate=0.0, experience_acknowledge="commit")
    auth = login(client)
    for i in range(5):
        client.post("/v1/execute", json={**CHAT, "prompt": f"q{i}"}, headers=auth)
    assert "qr_judge_calls_total{" not in client.get("/metrics").text
