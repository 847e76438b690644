"""The closed loop on real outcomes: MMLU prompts of unseen subjects served through the running service.

1. Train a policy on half of the MMLU subjects (``quantum-router train --split subject``).
2. Split the other half's prompts into traffic and held-out prompts (seeded).
3. Serve the two MMLU models as replay models (``provider: replay``; the replay judge reports the recorded
   outcome) with ``quantum-router serve``, starting from that policy, judge sample rate ``--sample-rate``.
4. Each round: send ``--per-round`` traffic prompts through ``/v1/execute``, wait for the judge, run
   ``quantum-router train --from-log --publish`` (the gate decides; ``--force`` publishes anyway), wait
   until the service serves what was published, and score the served policy's APGR on the held-out
   prompts.

Run with ``RAY_AUTH_MODE=disabled .venv/bin/python -m bench.replay_loop`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from bench.service_bench import free_port, login, process, service_env
from quantum_router.learning.datasets import (
    load_dataset,
    model_costs_per_1k,
    random_split,
    subject_split,
    to_problem,
)
from quantum_router.learning.evaluate import policy_scores, report, weak_and_strong
from quantum_router.policy import Policy, load_policy
from quantum_router.settings import Settings

PERSONA = "student"


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``quantum-router ARGS`` in a subprocess (its own Ray), output captured; retried when Ray's start
    times out."""
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "quantum_router.cli", *args],
            env={**os.environ, "RAY_AUTH_MODE": "disabled", **env},
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        # Ray waits a fixed 30 s for its raylet; on a loaded shared machine that can fail once in a while.
        if "timed out during startup" not in done.stderr:
            break
        print("Ray did not start in time; trying again", flush=True)
    return done


def judged_so_far(client: httpx.Client) -> float:
    """Judge calls finished (any outcome), from the service's metrics."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("qr_judge_calls_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_judge(client: httpx.Client, quiet_seconds: float = 1.5) -> None:
    """Until the judge's counters stop moving (verdicts run after the responses)."""
    last, since = judged_so_far(client), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        time.sleep(0.25)
        now = judged_so_far(client)
        if now != last:
            last, since = now, time.monotonic()


def main() -> int:
    """Run the loop; print one line per round and a JSON summary; optionally plot."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(Settings().data_dir))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=500, help="traffic prompts per round")
    parser.add_argument("--sample-rate", type=float, default=0.2, help="QR_JUDGE_SAMPLE_RATE")
    parser.add_argument("--epsilon", type=float, default=0.1, help="QR_EPSILON (exploration)")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of the new subjects' prompts")
    parser.add_argument("--steps", type=int, default=20_000, help="DQN steps of the initial policy")
    parser.add_argument(
        "--initial-policy",
        default=None,
        help="a policy already trained with `train --split subject --seed SEED` on --data (skips step 1)",
    )
    parser.add_argument("--log-steps", type=int, default=10_000, help="DQN steps of each train --from-log")
    parser.add_argument("--force", action="store_true", help="publish even when the gate refuses")
    parser.add_argument(
        "--train-arg",
        action="append",
        default=[],
        help="extra argument for each train --from-log (repeat), e.g. --train-arg=--no-text-refit",
    )
    parser.add_argument("--json", default=None, help="write the summary here")
    parser.add_argument("--plot", default=None, help="write a PNG of held-out APGR per round")
    args = parser.parse_args()

    data = load_dataset(Path(args.data))
    _, new = subject_split(data, args.seed)
    traffic, held_out = random_split(new, args.held_out, args.seed)
    costs = model_costs_per_1k(data.models, {})
    # The expensive model: its share of the traffic shows what the served policy pays for.
    strong_model = data.models[costs.index(max(costs))]
    print(
        f"{len(data.subjects) - len(new.subjects)} training subjects, {len(new.subjects)} new ones: "
        f"{len(traffic)} traffic prompts, {len(held_out)} held out",
        flush=True,
    )

    def held_out_apgr(policy: Policy) -> float:
        problem = to_problem(held_out, policy.feature_spec, costs, policy.text_model)
        return report("policy", policy_scores(policy, problem), problem, 0.0).apgr

    def text_apgr(policy: Policy) -> float | None:
        # The text model's scores alone as the router (no Q-network): does the refit learn the new subjects,
        # whatever the network then makes of it?
        if policy.text_model is None:
            return None
        problem = to_problem(held_out, policy.feature_spec, costs, policy.text_model)
        scores = problem.features[:, -policy.text_model.outputs :].astype(np.float64)
        return report("text", scores, problem, 0.0).apgr

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qr-replay-loop-") as tmp_name:
        tmp = Path(tmp_name)
        initial = Path(args.initial_policy) if args.initial_policy else tmp / "round-0.npz"
        if not args.initial_policy:
            train = ["train", "--dataset", args.data, "--split", "subject", "--seed", str(args.seed)]
            done = cli([*train, "--steps", str(args.steps), "--output", str(initial)], {})
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
        policy = load_policy(initial)
        if (policy.info.get("split"), policy.info.get("seed")) != ("subject", args.seed):
            raise ValueError(f"{initial} was not trained with --split subject --seed {args.seed}")
        first = held_out_apgr(policy)
        problem = to_problem(held_out, policy.feature_spec, costs, policy.text_model)
        weak, strong = weak_and_strong(problem)
        print(
            f"round 0: {policy.version}, held-out APGR {first:.3f} (weak {problem.models[weak]} "
            f"{problem.quality[:, weak].mean():.3f}, strong {problem.models[strong]} "
            f"{problem.quality[:, strong].mean():.3f})",
            flush=True,
        )
        first_text = text_apgr(policy)
        rounds.append(
            {
                "round": 0,
                "version": policy.version,
                "apgr": round(first, 4),
                "text_apgr": None if first_text is None else round(first_text, 4),
                "published": True,
            }
        )
        print(f"round 0: text scores alone, held-out APGR {first_text}", flush=True)

        catalog = {
            "personas": [PERSONA],
            "task_types": sorted(set(data.task_types)),
            "models": [
                {
                    "name": name,
                    "provider": "replay",
                    "cost_per_1k_tokens": cost,
                    "replay": {"dataset": str(Path(args.data).resolve())},
                }
                for name, cost in zip(data.models, costs, strict=True)
            ],
        }
        catalog_file = tmp / "catalog.yaml"
        catalog_file.write_text(yaml.safe_dump(catalog), encoding="utf-8")
        port = free_port()
        shared = {
            "QR_CATALOG_FILE": str(catalog_file),
            "QR_POLICY_FILE": str(initial),
            "QR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'router.db'}",
        }
        env = service_env(
            port,
            tmp / "router.db",
            {
                **shared,
                "QR_JUDGE_MODEL": strong_model,
                "QR_JUDGE_SAMPLE_RATE": str(args.sample_rate),
                "QR_JUDGE_MAX_USD_PER_HOUR": "1000000",
                "QR_JUDGE_BACKLOG": "100000",
                "QR_JUDGE_CONCURRENCY": "8",
                "QR_EPSILON": str(args.epsilon),
                "QR_POLICY_POLL_SECONDS": "0.5",
                "QR_EXPERIENCE_ACKNOWLEDGE": "commit",
                "QR_RANDOM_SEED": str(args.seed),
            },
        )
        serve = [sys.executable, "-m", "quantum_router.cli", "serve"]
        base = f"http://127.0.0.1:{port}"
        with process(serve, env, f"{base}/v1/health"), httpx.Client(base_url=base, timeout=30) as client:
            auth = login(client)
            served = 0
            for number in range(1, args.rounds + 1):
                strong_calls = 0
                for _ in range(args.per_round):
                    i = served % len(traffic)
                    served += 1
                    body = {
                        "prompt": traffic.prompts[i],
                        "persona": PERSONA,
                        "task_type": traffic.task_types[i],
                        # Past the end of the traffic, prompts repeat: a cache hit would log no outcome.
                        "options": {"bypass_cache": True},
                    }
                    response = client.post("/v1/execute", json=body, headers=auth)
                    if response.status_code != 200:
                        raise RuntimeError(response.text)
                    strong_calls += response.json()["model"] == strong_model
                wait_for_judge(client)
                version = f"replay-loop-{number}"
                output = tmp / f"round-{number}.npz"
                trained = cli(
                    ["train", "--from-log", "--publish", "--steps", str(args.log_steps), "--output",
                     str(output), "--version", version, *(["--force"] if args.force else []),
                     *args.train_arg],
                    shared,
                )  # fmt: skip
                if trained.returncode not in (0, 3):
                    raise RuntimeError(trained.stderr[-3000:])
                published = trained.returncode == 0
                if published:
                    deadline = time.monotonic() + 60
                    while client.get("/v1/capabilities").json()["policy_version"] != version:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"the service did not load {version}")
                        time.sleep(0.2)
                    policy = load_policy(output)
                used = next((ln for ln in trained.stdout.splitlines() if ln.startswith("using ")), "")
                refit = next((ln for ln in trained.stdout.splitlines() if ln.startswith("text model ")), "")
                value = held_out_apgr(policy)
                row = {
                    "round": number,
                    "version": policy.version,
                    "apgr": round(value, 4),
                    "published": published,
                    "strong_share_served": round(strong_calls / args.per_round, 3),
                    "log": used,
                    "text_refit": refit,
                    "candidate_apgr": round(held_out_apgr(load_policy(output)), 4),
                }
                text, candidate_text = text_apgr(policy), text_apgr(load_policy(output))
                row["text_apgr"] = None if text is None else round(text, 4)
                row["candidate_text_apgr"] = None if candidate_text is None else round(candidate_text, 4)
                rounds.append(row)
                print(
                    f"round {number}: {'published' if published else 'refused by the gate'} {version}; "
                    f"served policy's held-out APGR {value:.3f} (candidate {row['candidate_apgr']:.3f}); "
                    f"text scores alone {row['text_apgr']} (candidate {row['candidate_text_apgr']}); "
                    f"strong share this round {row['strong_share_served']:.2f}; {used}; {refit}",
                    flush=True,
                )
    summary = {"args": vars(args), "rounds": rounds}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["round"] for r in rounds], [r["apgr"] for r in rounds], marker="o")
        ax.axhline(0.5, color="grey", linestyle=":", label="random routing")
        ax.set_xlabel("round (0: trained on the other subjects only)")
        ax.set_ylabel("held-out APGR, new subjects")
        ax.set_title(f"replay loop: {args.per_round} prompts/round, judge rate {args.sample_rate}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
