import numpy as np

from quantum_router.features import FeatureSpec, extract, normalise_prompt

SPEC = FeatureSpec(
    personas=("developer", "architect"), task_types=("chat", "code_analysis"), ngram_buckets=64
)


def test_vector_has_the_declared_length_and_is_deterministic() -> None:
    a = extract("Sort a list in Python", "developer", "chat", SPEC)
    b = extract("Sort a list in Python", "developer", "chat", SPEC)
    assert a.shape == (SPEC.dim,)
    assert a.dtype == np.float32
    assert np.array_equal(a, b)


def test_case_and_whitespace_do_not_change_features() -> None:
    a = extract("Sort  a list\nin Python", "developer", "chat", SPEC)
    b = extract("sort a list in python", "developer", "chat", SPEC)
    assert np.array_equal(a, b)


def test_persona_task_and_length_bin_are_one_hot() -> None:
    v = extract("x" * 300, "architect", "code_analysis", SPEC)
    tail = v[SPEC.ngram_buckets :]
    persona, task = tail[:2], tail[2:4]
    lengths = tail[4 : 4 + len(SPEC.length_bins) + 1]
    assert persona.tolist() == [0.0, 1.0]
    assert task.tolist() == [0.0, 1.0]
    assert lengths.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]  # 256 <= 300 < 1024
    assert tail[-1] == 1.0


def test_different_prompts_give_different_ngrams() -> None:
    a = extract("explain quicksort", "developer", "chat", SPEC)
    b = extract("design a message queue", "developer", "chat", SPEC)
    assert not np.array_equal(a[:64], b[:64])
    assert abs(float(np.linalg.norm(a[:64])) - 1.0) < 1e-5


def test_spec_round_trips_through_a_dict() -> None:
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC


def test_normalise_prompt() -> None:
    assert normalise_prompt("  Hello\tWORLD \n") == "hello world"
