"""The experience log keeps the prompt's hashed n-gram buckets (never the prompt) when the served policy
has a text model: written through the batching writer and read back from the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantum_router.features import normalise_prompt
from quantum_router.log_training import logged
from quantum_router.text_buckets import decode_buckets
from tests.conftest import ClientFactory, login, stored_experience
from tests.text_policy import text_policy

PROMPT = "Explain   what this CODE does: for i in range(3): print(i)"


def test_buckets_are_logged_with_the_experience_and_read_back(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    policy = text_policy(tmp_path / "text.npz")
    assert policy.text_model is not None
    client = client_factory(policy_file=tmp_path / "text.npz")
    auth = login(client)
    body = {"prompt": PROMPT, "persona": "developer", "task_type": "code_analysis"}
    result = client.post("/v1/execute", json=body, headers=auth).json()
    assert result["policy_version"] == "text-1"
    row = stored_experience(client, result["experience_id"])
    assert row.text_buckets is not None and PROMPT.encode() not in row.text_buckets
    hashing, ngrams = decode_buckets(row.text_buckets)
    assert hashing == policy.text_model.hashing
    np.testing.assert_array_equal(ngrams, hashing.buckets_of(normalise_prompt(PROMPT)))
    # What train --from-log reads: the row's task type and buckets travel with its features.
    (experience,) = logged([row], policy.feature_spec.dim)
    assert (experience.task_type, experience.text_buckets) == ("code_analysis", row.text_buckets)

    # A cache hit observed nothing new and logs no buckets.
    hit = client.post("/v1/execute", json=body, headers=auth).json()
    assert hit["cache"] == "hit"
    assert stored_experience(client, hit["experience_id"]).text_buckets is None


def test_a_policy_without_a_text_model_logs_no_buckets(client_factory: ClientFactory) -> None:
    client = client_factory()
    body = {"prompt": PROMPT, "persona": "developer", "task_type": "chat"}
    result = client.post("/v1/execute", json=body, headers=login(client)).json()
    assert stored_experience(client, result["experience_id"]).text_buckets is None
