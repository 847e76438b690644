"""Refitting the served text model on logged rows: it learns a new subject's wording, pulled toward the
served model, and leaves the model alone when the log gives it nothing to learn from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from quantum_router.features import normalise_prompt
from quantum_router.learning.experience import LoggedExperience
from quantum_router.learning.text_fit import TextFitConfig, fit_on_all
from quantum_router.learning.text_refit import RefitConfig, log_text, refit_log, refit_text_model
from quantum_router.text_buckets import encode_buckets
from quantum_router.text_model import TextHashing, TextModel

MODELS = ["weak", "strong"]
FILLER = ["the", "a", "of", "which", "following", "is", "true", "statement", "answer", "value", "best"]
HASHING = TextHashing(buckets=4096)


def _subject(n: int, hard_word: str, seed: int) -> tuple[list[str], np.ndarray]:
    """Prompts of filler; a third contain ``hard_word``, which the weak model gets wrong (strong: 90 %)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 1 / 3
    prompts = []
    for is_hard in hard:
        words = list(rng.choice(FILLER, size=10))
        if is_hard:
            words.insert(int(rng.integers(len(words))), hard_word)
        prompts.append(" ".join(words))
    outcomes = np.stack([rng.random(n) < np.where(hard, 0.1, 0.9), rng.random(n) < 0.9], axis=1)
    return prompts, outcomes.astype(np.float64)


def _served() -> TextModel:
    # Fitted on the old subject only, whose hard prompts say "integral"; "mitosis" appears in none. The
    # idf is fitted with it in the vocabulary (a rare word), as a later subject's words are in MMLU.
    prompts, outcomes = _subject(300, "integral", seed=0)
    prompts += ["mitosis"]
    outcomes = np.vstack([outcomes, [[0.5, 0.5]]])
    return fit_on_all(prompts, ["old"] * len(prompts), outcomes, TextFitConfig(buckets=HASHING.buckets))


def _log(prompts: list[str], outcomes: np.ndarray, seed: int) -> list[LoggedExperience]:
    """Each prompt answered by a model drawn uniformly (propensity 0.5), the answer judged."""
    rng = np.random.default_rng(seed)
    rows = []
    for prompt, outcome in zip(prompts, outcomes, strict=True):
        a = int(rng.integers(2))
        buckets = HASHING.buckets_of(normalise_prompt(prompt))
        rows.append(
            LoggedExperience(
                features=np.array([1.0, 0.5, 0.5], np.float32),  # bias, then the served scores
                action=MODELS[a],
                propensity=0.5,
                quality=float(outcome[a]),
                source="judge",
                task_type="new",
                text_buckets=encode_buckets(buckets, HASHING),
            )
        )
    return rows


def _gain(model: TextModel, prompts: list[str]) -> np.ndarray:
    scores = np.stack([model.scores(normalise_prompt(p), "new") for p in prompts])
    return scores[:, 1] - scores[:, 0]


def test_a_refit_on_a_new_subject_learns_its_wording_on_held_out_prompts() -> None:
    served = _served()
    prompts, outcomes = _subject(400, "mitosis", seed=1)
    refit = refit_log(_log(prompts, outcomes, seed=2), served, MODELS, RefitConfig(c=10.0))
    assert refit.refitted and refit.covers_every_row
    assert sum(refit.rows_per_model.values()) == 400 and min(refit.rows_per_model.values()) > 150
    held, _ = _subject(300, "mitosis", seed=3)
    hard = np.array(["mitosis" in p for p in held])
    before, after = _gain(served, held), _gain(refit.model, held)
    # The served model cannot tell the new subject's hard prompts apart; the refit ranks them first.
    assert abs(before[hard].mean() - before[~hard].mean()) < 0.05
    assert after[hard].mean() - after[~hard].mean() > 0.3
    assert (after[hard][:, None] > after[~hard][None, :]).mean() > 0.95
    # The representation is the served one: same hashing and idf, so logged buckets stay valid.
    assert refit.model.hashing == served.hashing
    np.testing.assert_array_equal(refit.model.idf, served.idf)


def test_the_prior_holds_the_refit_near_the_served_model() -> None:
    served = _served()
    prompts, outcomes = _subject(200, "mitosis", seed=1)
    rows = log_text(_log(prompts, outcomes, seed=2), served, MODELS)
    every = np.arange(len(rows.positions))
    loose, _ = refit_text_model(served, rows, every, RefitConfig(c=10.0))
    tight, _ = refit_text_model(served, rows, every, RefitConfig(c=1e-4))
    distance = [float(np.abs(m.coef - served.coef).sum()) for m in (loose, tight)]
    assert distance[1] < 0.05 * distance[0]
    np.testing.assert_allclose(tight.intercept, served.intercept, atol=0.05)


def test_with_no_rows_to_learn_from_the_model_and_the_log_are_unchanged() -> None:
    served = _served()
    every = np.arange(0)
    model, used = refit_text_model(served, log_text([], served, MODELS), every, RefitConfig())
    assert used == [0, 0]
    np.testing.assert_array_equal(model.coef, served.coef)
    np.testing.assert_array_equal(model.intercept, served.intercept)

    prompts, outcomes = _subject(40, "mitosis", seed=1)
    logged = _log(prompts, outcomes, seed=2)
    # Rows without buckets, or hashed for another model, are not refitted on.
    foreign = TextHashing(buckets=2048)
    unusable = [replace(r, text_buckets=None) for r in logged[:20]] + [
        replace(r, text_buckets=encode_buckets(np.array([1, 2]), foreign)) for r in logged[20:]
    ]
    refit = refit_log(unusable, served, MODELS)
    assert not refit.refitted and refit.model is served and refit.experiences == unusable
    assert refit.rows_per_model == {"weak": 0, "strong": 0}


def test_bucketed_rows_get_cross_fitted_scores_and_the_others_keep_theirs() -> None:
    served = _served()
    prompts, outcomes = _subject(60, "mitosis", seed=1)
    logged = _log(prompts, outcomes, seed=2)
    logged[0] = replace(logged[0], text_buckets=None)
    refit = refit_log(logged, served, MODELS, RefitConfig(c=10.0))
    assert refit.refitted and sum(refit.rows_per_model.values()) == 59
    assert not refit.covers_every_row  # so the text scores are not the whole problem's reward model
    np.testing.assert_array_equal(refit.experiences[0].features, logged[0].features)
    new = np.stack([np.asarray(e.features) for e in refit.experiences[1:]])
    np.testing.assert_array_equal(new[:, 0], 1.0)  # the non-text features are kept
    # Cross-fitted, not the final model's in-sample scores (those fit the labels more closely).
    in_sample = np.stack([refit.model.scores(normalise_prompt(p), "new") for p in prompts[1:]])
    assert not np.allclose(new[:, 1:], in_sample)
    assert np.all((new[:, 1:] > 0) & (new[:, 1:] < 1))
