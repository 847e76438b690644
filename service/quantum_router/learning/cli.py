"""Entry points of `quantum-router train` and `quantum-router eval` (argparse; Ray is imported lazily)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantum_router.learning.datasets import (
    Dataset,
    dataset_digest,
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
from quantum_router.settings import Settings

DEFAULT_SPLIT = "random"
DEFAULT_SEED = 0
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_COST_WEIGHT = 0.1


def _dataset_path(arg: str | None) -> Path:
    # --dataset, else the data_dir setting (QR_DATA_DIR; default: the repository's MMLU copy). Read per
    # call, not cached, so a changed environment is seen by the next command in the same process.
    path = Path(arg) if arg else Settings().data_dir
    if not path.exists():
        raise ValueError(f"dataset {path} not found (pass --dataset or set QR_DATA_DIR)")
    return path


def _common(parser: argparse.ArgumentParser, splits: list[str], split_help: str) -> None:
    parser.add_argument(
        "--cost",
        action="append",
        default=[],
        metavar="MODEL=USD_PER_M",
        help="price of a model in USD per million tokens (repeatable); default: catalog",
    )
    parser.add_argument("--split", choices=splits, default=None, help=split_help)
    parser.add_argument("--seed", type=int, default=None, help="split and training seed (default 0)")
    parser.add_argument(
        "--test-fraction", type=float, default=None, help="share of prompts held out (random split)"
    )


def train_parser() -> argparse.ArgumentParser:
    """Arguments of ``quantum-router train``."""
    p = argparse.ArgumentParser(
        prog="quantum-router train", description="Train a routing policy with RLlib DQN."
    )
    p.add_argument(
        "--dataset",
        help="CSV or folder of CSVs with per-model outcomes (default: $QR_DATA_DIR, else the repository's "
        "data/routellm-mmlu)",
    )
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
    _common(
        p,
        ["random", "subject"],
        "seeded random split of prompts, or train on half the subjects and test on the rest",
    )
    return p


def eval_parser() -> argparse.ArgumentParser:
    """Arguments of ``quantum-router eval``."""
    p = argparse.ArgumentParser(prog="quantum-router eval", description="Evaluate a policy and baselines.")
    p.add_argument(
        "--dataset",
        help="CSV or folder of CSVs with per-model outcomes (default: $QR_DATA_DIR, else the repository's "
        "data/routellm-mmlu)",
    )
    p.add_argument("--policy", default=None, help="policy artifact (.npz); without it only baselines")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", default=None, help="write a PNG of quality against strong-call share")
    p.add_argument(
        "--cost-weight",
        type=float,
        default=DEFAULT_COST_WEIGHT,
        help="operating point of the baselines (quality per normalised cost)",
    )
    _common(
        p,
        ["random", "subject", "all"],
        "rows to score: the held-out part of a seeded random split or of the split by subject, or all "
        "rows (default: the policy's own split on its training dataset, all rows of any other dataset, "
        "the random split without a policy)",
    )
    return p


def _trained_on(info: dict[str, Any], data: Dataset, path: Path) -> bool:
    """Whether a policy with ``info`` was trained on ``data`` (read from ``path``)."""
    digest = info.get("dataset_digest")
    if digest is not None:
        return bool(digest == dataset_digest(data))
    # Policies trained before the digest was stored carry only the path they were given.
    source = info.get("dataset")
    return source is not None and Path(str(source)).resolve() == path.resolve()


def _split(
    data: Dataset, args: argparse.Namespace, info: dict[str, Any]
) -> tuple[Dataset, Dataset, str, int, float]:
    # Defaults come from the policy when there is one, so eval tests on exactly the rows training held out.
    how = args.split or str(info.get("split", DEFAULT_SPLIT))
    seed = args.seed if args.seed is not None else int(info.get("seed", DEFAULT_SEED))
    if how == "all":
        return data.subset(np.zeros(0, dtype=np.int64)), data, how, seed, 1.0
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
            # eval compares it with the dataset it is given: the training split applies only here.
            "dataset_digest": dataset_digest(data),
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
    path = _dataset_path(args.dataset)
    data = load_dataset(path)
    info = dict(policy.info) if policy else {}
    trained_here = policy is not None and _trained_on(info, data, path)
    if policy is not None and args.split is None and not trained_here:
        # The policy's split was drawn on another dataset and selects nothing meaningful here: score every
        # row. (A part of the training dataset also lands here; its training rows cannot be told apart.)
        info["split"] = "all"
    train, test, how, seed, _ = _split(data, args, info)
    if how == "all":
        scored = f"scored all {len(test)} rows of {path}"
        if policy is not None:
            scored += (
                " (including the rows the policy was trained on)"
                if trained_here
                else " (not the policy's training dataset)"
            )
    else:
        scored = f"scored the held-out test split: {len(test)} rows ({how} split, seed {seed})"
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
        title = f"{path.name}: {'all rows' if how == 'all' else how + ' split'}, {len(test)} test prompts"
        plot_reports(reports, shares, Path(args.plot), title)
    if args.json:
        out: dict[str, Any] = {"router": primary.name, **primary.to_dict()}
        out.update(
            {
                "routers": {r.name: r.to_dict() for r in reports},
                "split": how,
                "scored": scored,
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
        print(f"{scored}; weak {data.models[weak]}, strong {data.models[strong]}")
        print(format_table(reports))
        if args.plot:
            print(f"plot: {args.plot}")
    return 0
