"""``quantum-router train --from-log``: train on the service's own experience log and publish the policy.

The log is read from a replica (a lag-tolerant export). Only rows logged with the feature spec of the
policy being served are used, so features and network always agree, and only rows with an observed outcome
(a rating, a judge's verdict, a verifier's, agreement between answers, a failure): a row labelled with
nothing but the router's own prior would teach the policy its predictions back. A policy's belief is
instead the reward model's prior, which the labels correct per model and task type (learning/prior.py),
and the gate values both policies with that same reward model. By default that is the root policy: the
newest published one not itself trained on the log, else the initial one (the policy file or the catalog
prior). The served policy (``--prior served``) is, after the first round, a network trained on the root's
belief and this same log; taking it as the prior counts the log twice and carries each network's fitting
error into the next, which in the closed-loop bench sent chat back to the wrong model after a few rounds
(docs/routing.md, The closed loop on a wrong catalog). Publishing writes the
artifact to the ``policies`` table (and to Redis when it is configured), where every service replica picks
it up at its next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.cache.factory import build_cache
from quantum_router.catalog import load_catalog
from quantum_router.context import initial_policy
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.db.models import Experience
from quantum_router.execution import dense_features
from quantum_router.feedback import rating_quality
from quantum_router.learning import gate
from quantum_router.learning.experience import LoggedExperience
from quantum_router.learning.reward_model import REWARDS
from quantum_router.outcomes import QualitySource
from quantum_router.policy import Policy, PolicyFormatError, policy_from_bytes
from quantum_router.policy_store import publish_policy
from quantum_router.settings import Settings


def source_of(row: Experience) -> str | None:
    """Where the row's label comes from: ``rating`` when rated, else its logged source (None: unlabelled)."""
    return QualitySource.RATING.value if row.feedback_rating is not None else row.quality_source


def own_cost(row: Experience) -> float:
    """What the chosen model's own answers cost: its variations' logged costs (the other variations were
    the request's choice, not the policy's), or the row's cost when no variation is logged."""
    mine = [float(v.get("cost_usd", 0.0)) for v in row.variations or [] if v.get("model") == row.action]
    return sum(mine) if mine else float(row.cost_usd)


def logged(rows: Sequence[Experience], dim: int) -> list[LoggedExperience]:
    """Rows in the training form, keeping only those with an observed outcome whose features have ``dim``
    values."""
    return [
        LoggedExperience(
            features=dense_features(row.features),
            action=row.action,
            propensity=row.propensity,
            quality=row.quality,
            cost_usd=own_cost(row),
            latency_ms=row.latency_ms,
            rating=rating_quality(int(row.feedback_rating)) if row.feedback_rating is not None else None,
            source=source_of(row),
            task_type=row.task_type,
            text_buckets=row.text_buckets,
        )
        for row in rows
        if row.features.get("dim") == dim and source_of(row) is not None
    ]


def source_counts(experiences: Sequence[LoggedExperience]) -> dict[str, int]:
    """How many experiences each label source contributed, in the order of precedence."""
    counts = Counter(e.source for e in experiences)
    return {s.value: counts[s.value] for s in QualitySource if counts[s.value]}


async def _served_policy(db: Database, settings: Settings) -> Policy:
    artifact = await db.read_primary(store.latest_policy)
    if artifact is not None:
        return policy_from_bytes(artifact.data)
    return initial_policy(settings, load_catalog(settings.catalog_file))


LOG_TRAINED = "experience log"  # the info["source"] train_from_log gives its policies


def root_policy(published: Iterable[Policy], served: Policy, initial: Policy) -> Policy:
    """The reward model's prior: the first of ``published`` (newest first) not trained on the experience
    log, else ``initial``; ``served`` when that one routes other models or reads other features (its
    beliefs could not be read on the logged rows)."""
    root = next((p for p in published if p.info.get("source") != LOG_TRAINED), initial)
    if root.models != served.models or root.feature_spec != served.feature_spec:
        return served
    return root


async def _prior_policy(settings: Settings, served: Policy, choice: str, search: int) -> Policy:
    """The policy whose belief is the reward model's prior (``--prior``): the served one, or the root."""
    if choice == "served":
        return served
    db = Database(settings)
    try:
        artifacts = await db.read_primary(lambda session: store.published_policies(session, search))
    finally:
        await db.dispose()
    published = []
    for artifact in artifacts:
        try:
            published.append(policy_from_bytes(artifact.data))
        except PolicyFormatError:
            continue  # the service skips it too
    return root_policy(published, served, initial_policy(settings, load_catalog(settings.catalog_file)))


async def _load(settings: Settings, limit: int) -> tuple[Policy, list[LoggedExperience], int]:
    db = Database(settings)
    try:
        await upgrade(db.primary)
        policy = await _served_policy(db, settings)

        async def _rows(session: AsyncSession) -> Sequence[Experience]:
            return await store.experiences_since(session, None, limit)

        rows = await db.read(_rows)
        return policy, logged(rows, policy.feature_spec.dim), len(rows)
    finally:
        await db.dispose()


async def _publish(settings: Settings, policy: Policy) -> None:
    db = Database(settings)
    cache = build_cache(settings) if settings.redis_url else None
    try:
        await publish_policy(db, policy, cache)
    finally:
        await db.dispose()
        if cache is not None:
            await cache.close()


def main(argv: list[str], settings: Settings) -> int:
    """Parse ``argv`` (after ``train --from-log``), train, write and optionally publish."""
    parser = argparse.ArgumentParser(prog="quantum-router train --from-log", description=__doc__)
    parser.add_argument("--limit", type=int, default=100_000, help="newest experiences to read at most")
    parser.add_argument("--steps", type=int, default=20_000, help="experiences to sample while training")
    parser.add_argument("--output", type=Path, default=Path("policy.npz"))
    parser.add_argument("--publish", action="store_true", help="store it in the database for the service")
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even when the gate estimates it worse than the serving one",
    )
    parser.add_argument(
        "--prior",
        choices=["root", "served"],
        default="root",
        help="whose belief the reward model shrinks toward: the newest published policy not trained on "
        "the log, else the initial one (root, default), or the served policy",
    )
    parser.add_argument(
        "--prior-search", type=int, default=100, help="newest published policies to search for the root"
    )
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--version", default=None, help="policy version (default: dqn-<UTC time>)")
    parser.add_argument(
        "--no-text-refit",
        action="store_true",
        help="keep the served text model as it is (default: refit it on logged rows with buckets)",
    )
    parser.add_argument(
        "--text-prior-c",
        type=float,
        default=1.0,
        help="refit's prior variance: larger lets the logged rows move the text model further",
    )
    parser.add_argument(
        "--reward",
        choices=REWARDS,
        default="auto",
        help="what the env pays (auto: the refitted text model's cross-fitted scores when every row has "
        "them, else the log's own reward model, 'fitted')",
    )
    args = parser.parse_args(argv)
    from quantum_router.learning.train import TrainConfig, train_from_log  # imports Ray lazily

    served, experiences, read = asyncio.run(_load(settings, args.limit))
    if not experiences:
        print(
            f"train: none of the {read} experiences read has an observed outcome for the served feature spec",
            file=sys.stderr,
        )
        return 2
    sources = ", ".join(f"{name} {count}" for name, count in source_counts(experiences).items())
    print(f"using {len(experiences)} of {read} experiences with an observed outcome: {sources}")
    costs = served.model_costs or [
        load_catalog(settings.catalog_file).model(m).cost_per_1k_tokens for m in served.models
    ]
    config = TrainConfig(steps=args.steps, address=args.address, version=args.version, reward=args.reward)
    # A policy's belief is the reward model's prior: a model's few labels on a task type correct what it
    # believes there, instead of the model's average elsewhere standing in for them (issue #15).
    prior = asyncio.run(_prior_policy(settings, served, args.prior, args.prior_search))
    print(f"reward model prior: {prior.version} ({args.prior})")
    text_model, refreshed, info, cross_fitted = served.text_model, experiences, {}, False
    if text_model is not None and not args.no_text_refit:
        from quantum_router.learning.text_refit import RefitConfig, refit_log  # scipy: training only

        refit = refit_log(experiences, text_model, served.models, RefitConfig(c=args.text_prior_c))
        print(refit.describe())
        text_model, refreshed, cross_fitted = refit.model, refit.experiences, refit.covers_every_row
        info = {
            "text_refit": {"rows": refit.rows_per_model, "refitted": refit.refitted, "c": args.text_prior_c}
        }
    result = train_from_log(
        refreshed,
        served.feature_spec,
        served.models,
        costs,
        config,
        text_model=text_model,
        prior=prior,
        info=info,
        text_cross_fitted=cross_fitted,
    )
    report = gate.evaluate(
        experiences,
        result.policy,
        served,
        costs,
        config.cost_weight,
        prior_labels=config.prior_labels,
        prior=prior,
        new_experiences=refreshed,
    )
    print(report.describe())
    result.policy.info["gate"] = report.as_info()
    result.policy.save(args.output)
    print(
        f"trained {result.policy.version} on {len(experiences)} experiences in {result.seconds_total:.1f} s; "
        f"wrote {args.output}"
    )
    if args.publish and not report.passed and not args.force:
        print(
            "not published: its doubly robust value is below the serving policy's (--force publishes anyway)",
            file=sys.stderr,
        )
        return 3
    if args.publish:
        asyncio.run(_publish(settings, result.policy))
        print(f"published {result.policy.version}; service replicas load it at their next poll")
    return 0
