from quantum_router.scoring import agreement, score_answers
from quantum_router.variations import STYLES, plan_variations


def test_agreeing_answers_beat_the_outlier() -> None:
    texts = ["answer: alpha", "answer: alpha", "answer: bravo"]
    scores = score_answers(texts, [0.7, 0.7, 0.9], ["stop"] * 3)
    assert scores[0] == scores[1] > scores[2]


def test_a_single_answer_is_scored_by_its_prior_and_truncation_costs() -> None:
    assert score_answers(["ok"], [0.8], ["stop"]) == [0.8]
    assert score_answers(["ok"], [0.8], ["length"]) == [0.64]
    assert score_answers(["  "], [0.8], ["stop"]) == [0.0]


def test_agreement_is_one_alone_and_symmetric_in_pairs() -> None:
    assert agreement(["a b"]) == [1.0]
    a, b = agreement(["a b", "b c"])
    assert a == b == 1 / 3


def test_plans_cover_the_best_models_then_repeat_with_new_temperatures() -> None:
    plans = plan_variations(["m1", "m2"], 5)
    assert [p.model for p in plans] == ["m1", "m2", "m1", "m2", "m1"]
    assert len({(p.model, p.temperature) for p in plans}) == 5
    assert {p.style for p in plans} <= set(STYLES)
