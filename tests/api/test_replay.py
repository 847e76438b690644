"""Replayed MMLU models behind the API: /v1/execute and /v1/chat/completions answer with the recorded
outcome, and the replay judge logs it as the experience's observed quality."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import yaml

from quantum_router.settings import Settings
from tests.conftest import ClientFactory, login, stored_experience

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def replay_catalog(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    """A catalog of the two MMLU models replayed from the anatomy rows, and those rows."""
    dataset = tmp_path / "mmlu"
    dataset.mkdir()
    shutil.copy(Settings().data_dir / "mmlu_anatomy.csv", dataset / "mmlu_anatomy.csv")
    with (dataset / "mmlu_anatomy.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    catalog = {
        "personas": ["student"],
        "task_types": ["question_answering"],
        "models": [
            {
                "name": WEAK,
                "provider": "replay",
                "cost_per_1k_tokens": 0.0006,
                "replay": {"dataset": str(dataset)},
            },
            {
                "name": "gpt-4",
                "provider": "replay",
                "cost_per_1k_tokens": 0.02,
                "replay": {"dataset": str(dataset), "column": STRONG},
            },
        ],
    }
    path = tmp_path / "replay-catalog.yaml"
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    return path, rows


def recorded(row: dict[str, str], column: str) -> float:
    """The outcome the CSV row records for a model column."""
    return 1.0 if row[column] == "True" else 0.0


def test_execute_and_chat_answer_with_the_recorded_outcome_and_the_judge_logs_it(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    catalog, rows = replay_catalog(tmp_path)
    client = client_factory(
        catalog_file=catalog, judge_model="gpt-4", judge_sample_rate=1.0, experience_acknowledge="commit"
    )
    auth = login(client)
    # A row where the two models' records differ, so the answer shows which model's record was replayed.
    row = next(r for r in rows if r[WEAK] != r[STRONG])
    body = {"prompt": row["prompt"], "persona": "student", "task_type": "question_answering"}
    for model, column in ((WEAK, WEAK), ("gpt-4", STRONG)):
        response = client.post("/v1/execute", json={**body, "options": {"model": model}}, headers=auth)
        assert response.status_code == 200, response.text
        value = recorded(row, column)
        assert response.json()["answer"].startswith(f"[replay] {model}: recorded outcome {value:g}")
        experience_id = response.json()["experience_id"]
        deadline = time.monotonic() + 10
        while (stored := stored_experience(client, experience_id)).quality_source != "judge":
            assert time.monotonic() < deadline, "no verdict"
            time.sleep(0.05)
        assert stored.quality == value  # the replay judge reports what the dataset recorded

    # The policy chooses (no model forced): still a recorded outcome of one of the two.
    routed = client.post("/v1/execute", json=body, headers=auth)
    assert routed.status_code == 200 and routed.json()["answer"].startswith("[replay] ")

    chat = {"model": "gpt-4", "messages": [{"role": "user", "content": row["prompt"]}]}
    headers = {
        **auth,
        "x-quantum-router-persona": "student",
        "x-quantum-router-task-type": "question_answering",
    }
    reply = client.post("/v1/chat/completions", json=chat, headers=headers)
    assert reply.status_code == 200, reply.text
    content = reply.json()["choices"][0]["message"]["content"]
    assert content == f"[replay] gpt-4: recorded outcome {recorded(row, STRONG):g}" + (
        " (correct)" if recorded(row, STRONG) else " (wrong)"
    )
    streamed = client.post("/v1/chat/completions", json={**chat, "stream": True}, headers=headers)
    assert streamed.status_code == 200 and "[replay] gpt-4: recorded outcome" in streamed.text


def test_a_prompt_the_dataset_does_not_hold_is_an_error_response(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    catalog, _ = replay_catalog(tmp_path)
    client = client_factory(catalog_file=catalog)
    auth = login(client)
    body = {
        "prompt": "What is the capital of France?",
        "persona": "student",
        "task_type": "question_answering",
    }
    response = client.post("/v1/execute", json=body, headers=auth)
    # Every replay model was tried (the fallbacks too) and each said why: a 503, not a crash.
    assert response.status_code == 503
    assert response.json()["reason"] == "upstream_failed"
    assert "replays recorded outcomes and has none for this prompt" in response.json()["detail"]
    chat = {"model": "router", "messages": [{"role": "user", "content": body["prompt"]}]}
    headers = {
        **auth,
        "x-quantum-router-persona": "student",
        "x-quantum-router-task-type": "question_answering",
    }
    reply = client.post("/v1/chat/completions", json=chat, headers=headers)
    assert reply.status_code == 503
    assert "has none for this prompt" in reply.json()["error"]["message"]
    assert client.get("/v1/health").status_code == 200  # the service keeps serving
