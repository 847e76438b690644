"""The closed loop of issue #15 on a simulated fleet whose catalog is wrong.

Two models at the same price: the catalog declares ``model-a`` the better one at code generation, the
simulated truth says ``model-b``. The running service (the real ASGI app, in-process, SQLite) serves rounds
of traffic; a simulated judge grades a sample of the answers after they are sent; after each round
``quantum-router train --from-log --publish`` (in-process, on one Ray started once) trains on every observed
outcome logged so far and publishes if its gate lets it; the service loads the new policy at its next poll
and serves the next round with it. Per round this reports model-b's share of the code-generation requests
and the regret against the best fixed choice per task type, both from the simulated truth.

Run with ``RAY_AUTH_MODE=disabled .venv/bin/python -m bench.closed_loop`` (``--help`` for the knobs; the
defaults are the run in docs/routing.md, The closed loop).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.conftest import login, make_settings

from quantum_router import log_training
from quantum_router.app import create_app
from quantum_router.catalog import Catalog
from quantum_router.db.models import Experience
from quantum_router.settings import Settings

BETTER = "model-b"  # the truth's best at code generation
DECLARED = "model-a"  # the catalog's
CODE = "code_generation"
CHAT = "chat"
PRICE = 0.002  # USD per 1k tokens, both models

# What the catalog says (the prior routes by it) and what the simulated fleet does. Chat is there so the loop
# has to learn per task type: there the catalog is right and model-a stays the better choice.
DECLARED_QUALITY = {DECLARED: {"default": 0.8, CODE: 0.9}, BETTER: {"default": 0.7, CODE: 0.75}}
TRUE_QUALITY = {DECLARED: {"default": 0.8, CODE: 0.6}, BETTER: {"default": 0.7, CODE: 0.85}}


def catalog_document() -> dict[str, Any]:
    """The wrong catalog: same price, output length and latency; declared and true qualities differ."""
    return {
        "personas": ["developer"],
        "task_types": [CODE, CHAT],
        "models": [
            {
                "name": name,
                "provider": "simulated",
                "cost_per_1k_tokens": PRICE,
                "quality": DECLARED_QUALITY[name],
                "simulation": {
                    "latency_ms": {"median": 100, "sigma": 0.1},
                    "output_tokens": 200,
                    "quality": TRUE_QUALITY[name],
                },
            }
            for name in (DECLARED, BETTER)
        ],
    }


@dataclass(frozen=True)
class LoopConfig:
    """One closed-loop run."""

    rounds: int = 6
    requests_per_round: int = 200
    code_share: float = 0.75  # of each round's requests; the rest are chat
    judge_sample_rate: float = 0.2
    judge_noise: float = 0.1
    epsilon: float = 0.05  # the service's exploration (QR_EPSILON's default)
    steps: int = 2000  # DQN experiences sampled per training
    force: bool = False  # publish even when the gate refuses
    prior: str = "root"  # train --from-log --prior: whose belief the log's reward model shrinks toward
    seed: int = 0


@dataclass
class RoundResult:
    """What one round served, and what the training after it did."""

    round: int
    policy_version: str
    requests: int
    code_requests: int
    better_share_code: float  # share of code-generation requests routed to model-b
    better_share_chat: float  # the same for chat, where the catalog is right and model-a is better
    regret: float  # mean true quality of the best fixed choice per task type minus the chosen model's
    seconds_serving: float
    # The training after the round (None after the last round, which is not trained on).
    experiences_used: int | None = None  # rows with an observed outcome, every round so far
    experiences_read: int | None = None
    # Judge verdicts logged so far per "model/task type": how many model-b code-generation outcomes the
    # training after this round saw.
    judged: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    exit_status: int | None = None  # of train --from-log --publish: 0 published, 3 refused by the gate
    gate: str = ""
    seconds_training: float | None = None


@dataclass
class LoopResult:
    """Every round of one run, and when the loop switched to the better model."""

    config: LoopConfig
    rounds: list[RoundResult]

    @property
    def switch_round(self) -> int | None:
        """The first round from which on model-b served most code-generation requests in every round (None:
        not by the last round). A policy trained on few labels can switch and switch back, so the first
        round with a majority alone would flatter the loop."""
        switch = None
        for r in reversed(self.rounds):
            if r.better_share_code <= 0.5:
                break
            switch = r.round
        return switch

    @property
    def experiences_to_switch(self) -> int | None:
        """Observed outcomes the policy that switched was trained on (None: never switched, or round 0)."""
        switch = self.switch_round
        if switch is None or switch == 0:
            return None
        return self.rounds[switch - 1].experiences_used


def truth_regret(task_type: str, chosen: str) -> float:
    """How much worse, in expected true quality, ``chosen`` is than the best model for the task type."""
    qualities = {m: q.get(task_type, q["default"]) for m, q in TRUE_QUALITY.items()}
    return max(qualities.values()) - qualities[chosen]


def loop_settings(work: Path, catalog_file: Path, config: LoopConfig) -> Settings:
    """The service's settings: the wrong catalog, the judge on, policy polls every 0.2 s, fast simulation."""
    return make_settings(
        work,
        catalog_file=catalog_file,
        epsilon=config.epsilon,
        random_seed=config.seed,
        judge_model=DECLARED,  # any catalog model: the simulated judge sees the truth whichever it is
        judge_sample_rate=config.judge_sample_rate,
        simulation_judge_noise=config.judge_noise,
        judge_max_usd_per_hour=1000.0,
        judge_backlog=100_000,
        policy_poll_seconds=0.2,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=1_000_000,
    )


def serve_round(
    client: TestClient, auth: dict[str, str], config: LoopConfig, number: int
) -> tuple[dict[str, int], dict[str, int], float, float, str]:
    """Send one round of requests; (requests per task type, those routed to model-b, mean regret, seconds,
    the policy version that served them). Every prompt is new, so nothing comes from the cache: a random
    token from a generator seeded by the run's seed and the round (the simulated fleet's right and wrong
    answers are fixed per prompt, so the seed varies them too). Not the round number: the policy reads the
    prompt's words, and a word that marks the round would tell it which policy logged the row."""
    started = time.perf_counter()
    sent = {CODE: 0, CHAT: 0}
    better = {CODE: 0, CHAT: 0}
    regret = 0.0
    versions: set[str] = set()
    words = random.Random(f"{config.seed}-{number}")
    n_code = round(config.requests_per_round * config.code_share)
    for i in range(config.requests_per_round):
        # Code and chat interleaved evenly, so a round is the same mix whatever its length.
        task = (
            CODE
            if (i * n_code) // config.requests_per_round != ((i + 1) * n_code) // config.requests_per_round
            else CHAT
        )
        body = {
            "prompt": f"{task} request {words.getrandbits(64):016x}",
            "persona": "developer",
            "task_type": task,
        }
        response = client.post("/v1/execute", json=body, headers=auth)
        if response.status_code != 200:
            raise RuntimeError(f"execute answered {response.status_code}: {response.text}")
        answer = response.json()
        versions.add(answer["policy_version"])
        regret += truth_regret(task, answer["model"])
        sent[task] += 1
        better[task] += answer["model"] == BETTER
    if len(versions) != 1:
        raise RuntimeError(f"round {number} was served by several policies: {sorted(versions)}")
    return sent, better, regret / config.requests_per_round, time.perf_counter() - started, versions.pop()


def drain_judge(client: TestClient) -> dict[str, int]:
    """Wait until every sampled answer has its verdict written (the judge runs after the responses); the
    verdicts logged so far per "model/task type"."""
    services = client.app.state.services  # type: ignore[attr-defined]

    async def _drain() -> dict[str, int]:
        await services.experiences.flushed()
        if services.judge is not None:
            await services.judge.drain()
        await services.experiences.flushed()
        query = (
            select(Experience.action, Experience.task_type, func.count())
            .where(Experience.quality_source == "judge")
            .group_by(Experience.action, Experience.task_type)
        )
        async with services.db.write_session() as session:
            rows = (await session.execute(query)).all()
        return {f"{action}/{task}": int(n) for action, task, n in sorted(rows)}

    judged: dict[str, int] = client.portal.call(_drain)  # type: ignore[union-attr]
    return judged


_USING = re.compile(r"using (\d+) of (\d+) experiences with an observed outcome: (.*)")


def train_and_publish(settings: Settings, config: LoopConfig, version: str, result: RoundResult) -> None:
    """``quantum-router train --from-log --publish`` in this process; what it printed goes to ``result``."""
    argv = ["--steps", str(config.steps), "--publish", "--version", version, "--prior", config.prior]
    argv += ["--output", str(Path(tempfile.gettempdir()) / f"qr-closed-loop-{os.getpid()}.npz")]
    if config.force:
        argv.append("--force")
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = log_training.main(argv, settings)
    result.seconds_training = time.perf_counter() - started
    result.exit_status = status
    text = out.getvalue()
    if status not in (0, 3):
        raise RuntimeError(f"train --from-log exited {status}: {text}{err.getvalue()}")
    used = _USING.search(text)
    if used is None:
        raise RuntimeError(f"train --from-log did not say what it used: {text}")
    result.experiences_used, result.experiences_read = int(used.group(1)), int(used.group(2))
    result.sources = {
        name: int(count) for name, count in (part.rsplit(" ", 1) for part in used.group(3).split(", "))
    }
    result.gate = " | ".join(line.strip() for line in text.splitlines() if "DR" in line or "IPS" in line)


def wait_for_version(client: TestClient, version: str, timeout: float = 30.0) -> None:
    """Block until the running service serves ``version`` (it polls the policies table)."""
    deadline = time.monotonic() + timeout
    while client.get("/v1/capabilities").json()["policy_version"] != version:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not load {version} within {timeout} s")
        time.sleep(0.1)


def run_loop(config: LoopConfig, work: Path, progress: bool = False) -> LoopResult:
    """Serve ``config.rounds`` rounds, training and publishing between them; Ray must already be running
    (or train --from-log starts and stops one per round)."""
    catalog_file = work / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(catalog_document(), sort_keys=False))
    Catalog.model_validate(catalog_document())  # fail early on a catalog the service would refuse
    settings = loop_settings(work, catalog_file, config)
    rounds: list[RoundResult] = []
    with TestClient(create_app(settings)) as client:
        auth = login(client)
        for number in range(config.rounds):
            sent, better, regret, seconds, version = serve_round(client, auth, config, number)
            result = RoundResult(
                round=number,
                policy_version=version,
                requests=config.requests_per_round,
                code_requests=sent[CODE],
                better_share_code=better[CODE] / sent[CODE] if sent[CODE] else 0.0,
                better_share_chat=better[CHAT] / sent[CHAT] if sent[CHAT] else 0.0,
                regret=regret,
                seconds_serving=seconds,
            )
            rounds.append(result)
            if number < config.rounds - 1:
                result.judged = drain_judge(client)
                new_version = f"loop-{number + 1}"
                train_and_publish(settings, config, new_version, result)
                if result.exit_status == 0:
                    wait_for_version(client, new_version)
            if progress:
                print(describe_round(result), flush=True)
    return LoopResult(config, rounds)


def describe_round(r: RoundResult) -> str:
    """One line per round."""
    line = (
        f"round {r.round}: served by {r.policy_version}, {BETTER} share of {r.code_requests} code_generation "
        f"{r.better_share_code:.3f} (chat {r.better_share_chat:.3f}), regret {r.regret:.4f}"
    )
    if r.exit_status is not None:
        outcome = "published" if r.exit_status == 0 else "refused by the gate"
        sources = ", ".join(f"{k} {v}" for k, v in r.sources.items())
        line += (
            f"; then trained on {r.experiences_used} of {r.experiences_read} experiences ({sources}; "
            f"{r.judged.get(BETTER + '/' + CODE, 0)} judged {BETTER} code_generation) in "
            f"{r.seconds_training:.1f} s, {outcome} ({r.gate})"
        )
    return line


def start_ray() -> Path | None:
    """One local Ray for every training of the run, in its own temp dir (other Rays on the machine keep
    theirs); returns the dir to remove after ``ray.shutdown()``, or None when this process already runs a
    Ray, which is then used and left alone."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return None
    temp_dir = Path(tempfile.mkdtemp(prefix="qr-loop-", dir="/tmp"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp_dir))
    return temp_dir


def stop_ray(temp_dir: Path | None) -> None:
    """Shut the Ray of :func:`start_ray` down and remove its temp dir (nothing when it started none)."""
    if temp_dir is None:
        return
    import ray

    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def plot(results: list[LoopResult], path: Path) -> None:
    """Two panels across rounds, one line per judge sample rate: model-b's code-generation share, regret."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, (share_ax, regret_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    try:
        for result in results:
            xs = [r.round for r in result.rounds]
            label = f"judge samples {result.config.judge_sample_rate:.0%}"
            share_ax.plot(xs, [r.better_share_code for r in result.rounds], marker="o", label=label)
            regret_ax.plot(xs, [r.regret for r in result.rounds], marker="o", label=label)
        share_ax.set_ylabel(f"share of code_generation routed to {BETTER}")
        share_ax.set_ylim(0, 1)
        regret_ax.set_ylabel("regret per request (true quality)")
        regret_ax.set_ylim(bottom=0)
        for ax in (share_ax, regret_ax):
            ax.set_xlabel("round (0: the catalog prior)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(
            "closed loop on a wrong catalog: train --from-log and publish after every round", fontsize=10
        )
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the loop once per judge sample rate and print (and optionally plot and dump) every round."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = LoopConfig()
    parser.add_argument("--rates", default="0.05,0.2", help="judge sample rates, comma-separated")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--requests", type=int, default=defaults.requests_per_round, help="per round")
    parser.add_argument("--epsilon", type=float, default=defaults.epsilon)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="DQN experiences per training")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--force", action="store_true", help="publish even when the gate refuses")
    parser.add_argument(
        "--prior", choices=["root", "served"], default=defaults.prior, help="train --from-log --prior"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write the two panels as PNG here")
    parser.add_argument("--json", type=Path, default=None, help="write every round as JSON here")
    args = parser.parse_args(argv)
    results: list[LoopResult] = []
    ray_dir = start_ray()
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            config = LoopConfig(
                rounds=args.rounds,
                requests_per_round=args.requests,
                judge_sample_rate=rate,
                epsilon=args.epsilon,
                steps=args.steps,
                force=args.force,
                prior=args.prior,
                seed=args.seed,
            )
            print(
                f"judge sample rate {rate}, epsilon {config.epsilon}, {config.requests_per_round} requests "
                f"per round ({config.code_share:.0%} code_generation), {config.steps} DQN steps per "
                f"training, reward model prior: {config.prior}",
                flush=True,
            )
            with tempfile.TemporaryDirectory(prefix="qr-closed-loop-") as work:
                result = run_loop(config, Path(work), progress=True)
            results.append(result)
            switch, used = result.switch_round, result.experiences_to_switch
            print(
                f"judge sample rate {rate}: switched to {BETTER} in round {switch} after training on "
                f"{used} observed outcomes"
                if switch is not None
                else f"judge sample rate {rate}: did not switch to {BETTER} in {config.rounds} rounds",
                flush=True,
            )
    finally:
        stop_ray(ray_dir)
    if args.plot is not None:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [asdict(r.config) | {"rounds": [asdict(x) for x in r.rounds]} for r in results], indent=1
            )
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
