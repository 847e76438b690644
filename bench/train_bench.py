"""Benchmark of the learning pipeline: training cost, throughput, inference latency and routing quality.

Trains RLlib DQN on the RouteLLM MMLU data (seeded random split and split by subject), evaluates the policy
against the baselines on the held-out prompts and times the numpy forward pass the service uses.

    RAY_AUTH_MODE=disabled .venv/bin/python bench/train_bench.py [--data DIR] [--steps N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantum_router.learning.datasets import (
    load_dataset,
    model_costs_per_1k,
    split_dataset,
    to_problem,
    training_problems,
)
from quantum_router.learning.evaluate import evaluate, format_table
from quantum_router.learning.text_fit import TextFitConfig
from quantum_router.learning.train import TrainConfig, train_policy
from quantum_router.policy import Policy
from quantum_router.settings import Settings


def inference_latency(
    policy: Policy, prompts: list[str], task_types: list[str], n: int = 5000
) -> dict[str, float]:
    """p50/p99 in ms of one request: the numpy Q forward alone, and feature extraction plus forward."""
    rows = [policy.features(p, "", t) for p, t in zip(prompts[:n], task_types[:n], strict=True)]
    forward, full = [], []
    for prompt, task, x in zip(prompts[:n], task_types[:n], rows, strict=True):
        t0 = time.perf_counter()
        int(np.argmax(policy.q_values(x)))
        t1 = time.perf_counter()
        int(np.argmax(policy.q_values(policy.features(prompt, "", task))))
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        full.append(t2 - t1)
    ms = 1000.0
    return {
        "forward_p50_ms": float(np.percentile(forward, 50) * ms),
        "forward_p99_ms": float(np.percentile(forward, 99) * ms),
        "features_and_forward_p50_ms": float(np.percentile(full, 50) * ms),
        "features_and_forward_p99_ms": float(np.percentile(full, 99) * ms),
    }


def feature_probe(data_dir: Path, seed: int) -> dict[str, dict[str, float]]:
    """APGR of a ridge regression of the strong-minus-weak gain on feature-spec variants (no Ray).

    A cheap upper-bound check: if a full-information linear model cannot rank prompts on these features,
    a bandit learner that sees one outcome per step will not either.
    """
    from quantum_router.features import FeatureSpec
    from quantum_router.learning.evaluate import prior_scores
    from quantum_router.learning.experience import fit_ridge
    from quantum_router.learning.metrics import apgr, two_model_curve

    data = load_dataset(data_dir)
    subjects = tuple(sorted(set(data.task_types)))
    fine_bins = (100, 150, 200, 300, 400, 600, 900, 1400, 2000, 3000)
    specs = {
        "default (512 buckets, 1-2 grams)": FeatureSpec((), subjects),
        "finer length bins": FeatureSpec((), subjects, length_bins=fine_bins),
        "1024 buckets, unigrams": FeatureSpec((), subjects, ngram_buckets=1024, ngram_max=1),
        "2048 buckets": FeatureSpec((), subjects, ngram_buckets=2048),
        "16 buckets (about subject only)": FeatureSpec((), subjects, ngram_buckets=16),
    }
    out: dict[str, dict[str, float]] = {}
    for how in ("random", "subject"):
        train, test = split_dataset(data, how, seed)
        for name, spec in specs.items():
            a, b = to_problem(train, spec, [0.0, 1.0]), to_problem(test, spec, [0.0, 1.0])
            gain = (a.quality[:, 1] - a.quality[:, 0]).astype(np.float64)
            coef = fit_ridge(a.features.astype(np.float64), gain, np.ones(len(gain)), 30.0)
            scores = np.hstack([b.features, np.ones((len(b), 1))]) @ coef
            value = apgr(two_model_curve(scores, b.quality[:, 0], b.quality[:, 1]))
            out.setdefault(how, {})[f"ridge, {name}"] = round(value, 3)
        prior = prior_scores(to_problem(train, specs["default (512 buckets, 1-2 grams)"], [0.0, 1.0]), b)
        out[how]["per-subject prior"] = round(
            apgr(two_model_curve(prior[:, 1] - prior[:, 0], b.quality[:, 0], b.quality[:, 1])), 3
        )
        print(how, json.dumps(out[how], indent=1))
    return out


def text_probe(data_dir: Path, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    """Held-out APGR of the text model alone (strong minus weak probability) and of the per-subject prior,
    per split and seed (no Ray). The text model is what the DQN's text reward and features carry, so this
    is the ceiling a policy trained on them approaches."""
    from quantum_router.features import normalise_prompt
    from quantum_router.learning.evaluate import prior_scores, weak_and_strong
    from quantum_router.learning.metrics import apgr, two_model_curve
    from quantum_router.learning.text_fit import fit_on_all

    data = load_dataset(data_dir)
    out: dict[str, dict[str, list[float]]] = {}
    for how in ("random", "subject"):
        for seed in seeds:
            train, test = split_dataset(data, how, seed)
            model = fit_on_all(train.prompts, train.task_types, train.outcomes)
            pairs = zip(test.prompts, test.task_types, strict=True)
            scores = np.stack([model.scores(normalise_prompt(p), t) for p, t in pairs])
            a, b = training_problems(data, train, test, [0.0, 1.0], None)
            weak, strong = weak_and_strong(b)
            prior = prior_scores(a, b)
            w, s = b.quality[:, weak], b.quality[:, strong]
            row = out.setdefault(how, {"text model": [], "per-subject prior": []})
            for name, matrix in (("text model", scores), ("per-subject prior", prior)):
                gap = matrix[:, strong] - matrix[:, weak]
                row[name].append(round(apgr(two_model_curve(gap, w, s)), 3))
            print(how, seed, {k: v[-1] for k, v in row.items()}, flush=True)
    for how, rows in out.items():
        print(how, {k: f"mean {np.mean(v):.3f} over seeds {seeds}: {v}" for k, v in rows.items()})
    return out


def main() -> int:
    """Run the benchmark; prints tables and writes a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(Settings().data_dir), help="default: $QR_DATA_DIR or data/")
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--hidden", default="64")
    parser.add_argument("--seed", type=int, default=0)
    defaults = TrainConfig()
    parser.add_argument("--reward", default=defaults.reward, choices=["auto", "text", "outcome", "ridge"])
    parser.add_argument("--text-model", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--reward-ridge", type=float, default=defaults.reward_ridge)
    parser.add_argument("--reward-outcome-weight", type=float, default=defaults.reward_outcome_weight)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--intensity", type=float, default=defaults.training_intensity)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--epsilon-end", type=float, default=defaults.epsilon_end)
    parser.add_argument("--splits", default="random,subject")
    parser.add_argument("--json", default="bench/train_bench.json")
    parser.add_argument("--probe", action="store_true", help="only the ridge feature probe (no Ray)")
    parser.add_argument(
        "--text-probe", default=None, metavar="SEEDS", help="only the text model's APGR, e.g. 0,1,2"
    )
    args = parser.parse_args()
    if args.probe:
        feature_probe(Path(args.data), args.seed)
        return 0
    if args.text_probe:
        text_probe(Path(args.data), [int(s) for s in args.text_probe.split(",")])
        return 0

    data = load_dataset(Path(args.data))
    costs = model_costs_per_1k(data.models, {})
    summary: dict[str, Any] = {
        "steps": args.steps,
        "hidden": args.hidden,
        "seed": args.seed,
        "config": {k: v for k, v in vars(args).items() if k not in ("data", "json", "probe")},
        "splits": {},
    }
    for how in args.splits.split(","):
        train, test = split_dataset(data, how, args.seed)
        text = TextFitConfig(seed=args.seed) if args.text_model else None
        fit_started = time.perf_counter()
        train_problem, test_problem = training_problems(data, train, test, costs, text)
        text_fit_seconds = time.perf_counter() - fit_started
        config = TrainConfig(
            steps=args.steps,
            hidden=[int(h) for h in args.hidden.split(",")],
            seed=args.seed,
            reward=args.reward,
            reward_ridge=args.reward_ridge,
            reward_outcome_weight=args.reward_outcome_weight,
            lr=args.lr,
            training_intensity=args.intensity,
            batch_size=args.batch_size,
            epsilon_end=args.epsilon_end,
        )
        result = train_policy(train_problem, config, info={"split": how, "seed": args.seed})
        reports = evaluate(test_problem, train_problem, result.policy, config.cost_weight, args.seed)
        print(f"\n== {how} split: {len(train)} train / {len(test)} test prompts ==")
        print(format_table(reports))
        timing = {
            "text_model_and_features_seconds": text_fit_seconds,
            "seconds_total": result.seconds_total,
            "seconds_training": result.seconds_training,
            "env_steps": result.env_steps,
            "learner_updates": result.learner_updates,
            "learner_update_ms": result.learner_update_ms,
            "batch_size": config.batch_size,
            "learner_ms_per_experience": result.ms_per_experience,
            "experiences_per_second": result.experiences_per_second,
            "timers_s": result.timers,
        }
        print(json.dumps(timing, indent=1))
        summary["splits"][how] = {"timing": timing, "routers": {r.name: r.to_dict() for r in reports}}
        if "latency" not in summary:
            summary["latency"] = inference_latency(result.policy, test.prompts, test.task_types)
            print(json.dumps(summary["latency"], indent=1))
    Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
