"""``make loadtest``: the Locust scenario in bench/locustfile.py, headless and bounded in time, against a
service this script starts with an instant OpenAI-compatible stub as its fleet: on the embedded defaults,
or with ``--stack full`` (``STACK=full``) on a six-node Redis Cluster and PostgreSQL with two replicas.

Writes Locust's CSV files and HTML report into ``--out`` beside ``summary.md``: per request type, the
median, 95th and 99th percentile, requests per second and failures, with the design's targets.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.servers import read_env_file

from bench.service_bench import PASSWORD, ROOT, router_on_stub

# DESIGN.md section 6: the target (ms) of each request type the scenario sends.
TARGETS_MS = {"capabilities": 100, "execute simple": 2000, "execute complex": 10_000}


def summary(stats_csv: Path, users: int, seconds: int, stack: str) -> str:
    lines = [
        f"Locust, {users} users for {seconds} s, service on the {stack} stack, instant stub upstream.",
        "",
        "| request | n | failures | req/s | median ms | p95 ms | p99 ms | target ms | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            name = row["Name"]
            target = TARGETS_MS.get(name)
            met = "" if target is None else ("yes" if float(row["95%"]) <= target else "no")
            rate = float(row["Requests/s"])
            lines.append(
                f"| {name} | {row['Request Count']} | {row['Failure Count']} | {rate:.1f} "
                f"| {row['50%']} | {row['95%']} | {row['99%']} | {target or ''} | {met} |"
            )
    return "\n".join(lines) + "\n"


def run_locust(args: argparse.Namespace, port: int) -> None:
    """Locust headless against the service on ``port``; CSV and HTML into ``args.out``."""
    subprocess.run(
        [
            str(Path(sys.executable).parent / "locust"),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--only-summary",
            "--users",
            str(args.users),
            "--spawn-rate",
            str(args.spawn_rate),
            "--run-time",
            f"{args.seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            f"http://127.0.0.1:{port}",
            "--csv",
            str(args.out / "locust"),
            "--html",
            str(args.out / "locust.html"),
        ],
        env={**os.environ, "QR_LOADTEST_PASSWORD": PASSWORD},
        check=False,
        timeout=args.seconds + 120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--stack", choices=["embedded", "full"], default="embedded")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qr-loadtest-") as tmp_dir:
        tmp = Path(tmp_dir)
        tmp.chmod(0o755)
        extra: dict[str, str] = {}
        scripts = []
        if args.stack == "full":
            quiet = {"check": True, "stdout": subprocess.DEVNULL}
            for script, name in (("redis-cluster.sh", "redis"), ("postgres-replicas.sh", "pg")):
                subprocess.run([ROOT / "scripts" / script, "--dir", tmp / name, "start"], **quiet)
                scripts.append((script, tmp / name))
                extra.update(read_env_file(tmp / name / "env"))
        try:
            models = (
                ("stub-small", "stub-small", 0.0005),
                ("stub-medium", "stub-medium", 0.003),
                ("stub-large", "stub-large", 0.02),
            )
            tasks, personas = ("code_generation", "code_analysis"), ("developer", "architect")
            with router_on_stub(tmp, tasks, personas, models, extra) as service:
                run_locust(args, service.port)
        finally:
            for script, directory in scripts:
                subprocess.run([ROOT / "scripts" / script, "--dir", directory, "destroy"], check=False)
    report = summary(args.out / "locust_stats.csv", args.users, args.seconds, args.stack)
    (args.out / "summary.md").write_text(report)
    print(report)
    print(f"Locust's CSV and HTML report, and this summary: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
