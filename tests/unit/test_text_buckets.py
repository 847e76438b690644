"""The logged form of a prompt's words: packed n-gram buckets, and the policy hashing a prompt once for
its features and its log row."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_router.features import FeatureSpec, normalise_prompt
from quantum_router.policy import Policy
from quantum_router.text_buckets import decode_buckets, encode_buckets
from quantum_router.text_model import TextHashing, TextModel


@pytest.mark.parametrize("buckets", [256, 65_536, 1 << 20])
def test_buckets_round_trip_with_their_hashing(buckets: int) -> None:
    hashing = TextHashing(buckets=buckets, ngram_max=2, max_chars=1000)
    ngrams = hashing.buckets_of(normalise_prompt("Which of the following is an integral? Choose the best."))
    blob = encode_buckets(ngrams, hashing)
    decoded_hashing, decoded = decode_buckets(blob)
    assert decoded_hashing == hashing
    np.testing.assert_array_equal(decoded, ngrams)
    # Two bytes an index while they fit (65,536 buckets is the text model's default), four beyond.
    assert len(blob) == 10 + len(ngrams) * (2 if buckets <= 65_536 else 4)


def test_an_empty_prompt_round_trips_and_foreign_bytes_are_refused() -> None:
    hashing = TextHashing()
    assert len(decode_buckets(encode_buckets(hashing.buckets_of(""), hashing))[1]) == 0
    good = encode_buckets(np.array([1, 2, 3]), hashing)
    for bad in (b"", good[:5], b"\x02" + good[1:], good + b"\x00"):
        with pytest.raises(ValueError):
            decode_buckets(bad)


def _policy(text: bool) -> Policy:
    rng = np.random.default_rng(0)
    spec = FeatureSpec(personas=(), task_types=("x",), ngram_buckets=16, text_scores=2 if text else 0)
    model = TextModel(
        hashing=TextHashing(buckets=512),
        idf=rng.uniform(1, 3, 512).astype(np.float32),
        coef=rng.normal(size=(512, 2)).astype(np.float32),
        intercept=np.zeros(2, np.float32),
    )
    layer = (rng.normal(size=(spec.dim, 2)).astype(np.float32), np.zeros(2, np.float32))
    return Policy("t", ["w", "s"], spec, [], [layer], activation="linear", text_model=model if text else None)


def test_the_policy_logs_the_buckets_its_text_model_scored() -> None:
    policy = _policy(text=True)
    assert policy.text_model is not None
    prompt = "  What is the INTEGRAL of x^2?  "
    features, blob = policy.features_and_buckets(prompt, "", "x")
    np.testing.assert_array_equal(features, policy.features(prompt, "", "x"))
    assert blob is not None
    hashing, ngrams = decode_buckets(blob)
    assert hashing == policy.text_model.hashing
    np.testing.assert_array_equal(ngrams, hashing.buckets_of(normalise_prompt(prompt)))


def test_a_policy_without_a_text_model_logs_no_buckets() -> None:
    policy = _policy(text=False)
    features, blob = policy.features_and_buckets("hello there", "", "x")
    assert blob is None
    np.testing.assert_array_equal(features, policy.features("hello there", "", "x"))
