"""Entry points of `quantum-router train` and `quantum-router eval` (argparse; Ray is imported lazily)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantum_router.learning.datasets import (
    Dataset,
    feature_spec_for_dataset,
    load_dataset,
    model_costs_per_1k,
    parse_cost_overrides,
    split_dataset,
    to_problem,
    training_problems,
)
from quantum_router.learning.evaluate import evaluate, format_table, weak_and_strong
from quantum_router.policy import Policy, load_policy

DEFAULT_SPLIT = "random"
DEFAULT_SEED = 0
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_COST_WEIGHT = 0.1


def _dataset_path(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    env = os.environ.get("QR_DATA_DIR")
    return Path(env) if env else None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cost",
        action="append",
        default=[],
        metavar="MODEL=USD_PER_M",
        help="price of a model in USD per million tokens (repeatable); default: catalog",
    )
    parser.add_argument(
        "--split",
        choices=["random", "subject"],
        default=None,
        help="seeded random split of prompts, or train on half the subjects and test on the rest",
    )
    parser.add_argument("--seed", type=int, default=None, help="split and training seed (default 0)")
    parser.add_argument(
        "--test-fraction", type=float, default=None, help="share of prompts held out (random split)"
    )


def train_parser() -> argparse.ArgumentParser:
    """Arguments of ``quantum-router train``."""
    p = argparse.ArgumentParser(
        prog="quantum-router train", description="Train a routing policy with RLlib DQN."
    )
    p.add_argument("--dataset", help="CSV or folder of CSVs with per-model outcomes (default: $QR_DATA_DIR)")
    p.add_argument("--output", default="policy.npz", help="where to write the policy artifact")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--num-env-runners", type=int, default=0)
    p.add_argument("--num-learners", type=int, default=0)
    p.add_argument("--steps", type=int, default=20_000, help="experiences to sample")
    p.add_argument(
        "--cost-weight",
        type=float,
        default=DEFAULT_COST_WEIGHT,
        help="reward penalty per normalised cost (1 = the most expensive model)",
    )
    p.add_argument("--hidden", default="64", help="hidden layer sizes, comma separated")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: TrainConfig's)")
    p.add_argument(
        "--reward",
        choices=["auto", "text", "ridge", "outcome"],
        default=None,
        help="what the env pays: the text model's cross-fitted scores or a ridge reward model, both fitted "
        "on the training split (lower variance), or each prompt's observed outcome (default: auto, which "
        "is text with a text model and ridge without)",
    )
    p.add_argument(
        "--text-model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit the per-model text model whose scores the policy reads (default: on)",
    )
    p.add_argument(
        "--reward-outcome-weight",
        type=float,
        default=None,
        help="with --reward ridge: share of the observed outcome blended into the ridge prediction",
    )
    p.add_argument("--version", default=None, help="policy version string (default: dqn-<UTC time>)")
    _common(p)
    return p


def eval_parser() -> argparse.ArgumentParser:
    """Arguments of ``quantum-router eval``."""
    p = argparse.ArgumentParser(prog="quantum-router eval", description="Evaluate a policy and baselines.")
    p.add_argument("--dataset", required=True, help="CSV or folder of CSVs with per-model outcomes")
    p.add_argument("--policy", default=None, help="policy artifact (.npz); without it only baselines")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", default=None, help="write a PNG of quality against strong-call share")
    p.add_argument(
        "--cost-weight",
        type=float,
        default=DEFAULT_COST_WEIGHT,
        help="operating point of the baselines (quality per normalised cost)",
    )
    _common(p)
    return p


def _split(
    data: Dataset, args: argparse.Namespace, info: dict[str, Any]
) -> tuple[Dataset, Dataset, str, int, float]:
    # Defaults come from the policy when there is one, so eval tests on exactly the rows training held out.
    how = args.split or str(info.get("split", DEFAULT_SPLIT))
    seed = args.seed if args.seed is not None else int(info.get("seed", DEFAULT_SEED))
    frac = (
        args.test_fraction
        if args.test_fraction is not None
        else float(info.get("test_fraction", DEFAULT_TEST_FRACTION))
    )
    train, test = split_dataset(data, how, seed, frac)
    return train, test, how, seed, frac


def _guarded(prog: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    # Bad input (unknown model, missing price, malformed CSV or artifact) is a message, not a traceback.
    try:
        return run(args)
    except (ValueError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


def train_main(argv: list[str]) -> int:
    """``quantum-router train``: train on a dataset's training split and write the policy artifact."""
    return _guarded("train", _train, train_parser().parse_args(argv))


def eval_main(argv: list[str]) -> int:
    """``quantum-router eval``: metrics of a policy (if given) and the baselines on the held-out split."""
    return _guarded("eval", _eval, eval_parser().parse_args(argv))


def _train(args: argparse.Namespace) -> int:
    path = _dataset_path(args.dataset)
    if path is None:
        print("train: no --dataset and QR_DATA_DIR is not set", file=sys.stderr)
        return 2
    from quantum_router.learning.text_fit import TextFitConfig
    from quantum_router.learning.train import TrainConfig, train_policy  # imports Ray lazily

    data = load_dataset(path)
    train, test, how, seed, frac = _split(data, args, {})
    costs = model_costs_per_1k(data.models, parse_cost_overrides(args.cost))
    text = TextFitConfig(seed=seed) if args.text_model else None
    problem, test_problem = training_problems(data, train, test, costs, text)
    options: dict[str, Any] = {}
    if args.reward is not None:
        options["reward"] = args.reward
    if args.reward_outcome_weight is not None:
        options["reward_outcome_weight"] = args.reward_outcome_weight
    if args.lr is not None:
        options["lr"] = args.lr
    config = TrainConfig(
        **options,
        steps=args.steps,
        cost_weight=args.cost_weight,
        hidden=[int(h) for h in args.hidden.split(",") if h],
        num_env_runners=args.num_env_runners,
        num_learners=args.num_learners,
        address=args.address,
        seed=seed,
        version=args.version,
    )
    result = train_policy(
        problem,
        config,
        info={
            "split": how,
            "seed": seed,
            "test_fraction": frac,
            "train_rows": len(train),
            "test_rows": len(test),
        },
    )
    result.policy.save(Path(args.output))
    reports = evaluate(test_problem, problem, result.policy, args.cost_weight, seed)
    print(
        f"wrote {args.output} ({result.policy.version}): {result.env_steps} experiences in "
        f"{result.seconds_training:.1f}s ({result.experiences_per_second:.0f}/s), "
        f"{result.learner_updates} updates, {result.ms_per_experience:.3f} ms learner time per experience"
    )
    print(f"held-out {how} split ({len(test)} rows):")
    print(format_table(reports))
    return 0


def _eval(args: argparse.Namespace) -> int:
    policy: Policy | None = load_policy(Path(args.policy)) if args.policy else None
    data = load_dataset(Path(args.dataset))
    train, test, how, seed, _ = _split(data, args, policy.info if policy else {})
    overrides = parse_cost_overrides(args.cost)
    if policy is not None and policy.model_costs:
        # The prices the policy was trained with, unless overridden on the command line.
        known = {m: c * 1000.0 for m, c in zip(policy.models, policy.model_costs, strict=True)}
        overrides = {**known, **overrides}
    costs = model_costs_per_1k(data.models, overrides)
    spec = policy.feature_spec if policy else feature_spec_for_dataset(data)
    text_model = policy.text_model if policy else None
    test_problem = to_problem(test, spec, costs, text_model)
    train_problem = to_problem(train, spec, costs, text_model) if len(train) else None
    reports = evaluate(test_problem, train_problem, policy, args.cost_weight, seed)
    primary = next((r for r in reports if r.name == "policy"), None) or next(
        (r for r in reports if r.name == "prior"), reports[0]
    )
    weak, strong = weak_and_strong(test_problem)
    if args.plot:
        from quantum_router.learning.plot import plot_reports

        shares = {r.name: r.calls[data.models[strong]] for r in reports}
        title = f"{Path(args.dataset).name}: {how} split, {len(test)} test prompts"
        plot_reports(reports, shares, Path(args.plot), title)
    if args.json:
        out: dict[str, Any] = {"router": primary.name, **primary.to_dict()}
        out.update(
            {
                "routers": {r.name: r.to_dict() for r in reports},
                "split": how,
                "seed": seed,
                "train_rows": len(train),
                "test_rows": len(test),
                "weak": data.models[weak],
                "strong": data.models[strong],
                "plot": args.plot,
            }
        )
        print(json.dumps(out, indent=None))
    else:
        print(
            f"{how} split, seed {seed}: {len(train)} train / {len(test)} test prompts; "
            f"weak {data.models[weak]}, strong {data.models[strong]}"
        )
        print(format_table(reports))
        if args.plot:
            print(f"plot: {args.plot}")
    return 0
