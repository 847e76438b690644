"""Every service benchmark in a tiny smoke mode, so the scripts cannot rot between benchmark runs. Only that
they run and report is checked: speed is measured by `make bench`, never asserted in tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_service_bench() -> None:
    out = _run(
        "bench.service_bench",
        "--n",
        "5",
        "--n-login",
        "2",
        "--n-exec",
        "2",
        "--n-overhead",
        "5",
        "--n-memory",
        "20",
    )
    assert "router overhead" in out


def test_chat_bench() -> None:
    assert "router overhead, first chunk" in _run("bench.chat_bench", "--n", "3")


def test_concurrency_bench() -> None:
    out = _run("bench.concurrency_bench", "--concurrency", "2", "--requests", "10")
    assert "statuses {200: 10}" in out


def test_judge_overhead() -> None:
    out = _run("bench.judge_overhead", "--n", "3")
    assert "judge sample rate 1.0: p50" in out


def test_loadtest(tmp_path: Path) -> None:
    out = _run(
        "bench.loadtest", "--users", "2", "--spawn-rate", "2", "--seconds", "4", "--out", str(tmp_path)
    )
    assert "| Aggregated |" in out
    assert (tmp_path / "locust.html").is_file() and (tmp_path / "summary.md").is_file()


def test_peer_overhead() -> None:
    # Installs the pinned LiteLLM proxy into its own cached virtual environment on the first run.
    out = _run("bench.peer_overhead", "--n", "5", "--rounds", "1", "--concurrency", "1")
    assert "| Quantum Router | 1 |" in out and "| LiteLLM " in out


def test_perf_report(tmp_path: Path) -> None:
    (tmp_path / "performance.md").write_text("# Performance\n\nHand-written history stays.\n")
    out = _run("bench.report", "--smoke", "--out", str(tmp_path))
    assert "router overhead, concurrency 1:" in out
    document = (tmp_path / "performance.md").read_text()
    assert "| target | goal | measured |" in document and "Hand-written history stays." in document
    assert all(
        (tmp_path / png).is_file() for png in ("perf-endpoints.png", "perf-throughput.png", "perf-peer.png")
    )


def test_trees() -> None:
    out = _run("bench.trees", "a=", "b=,QR_EXPERIENCE_LINGER_MS=0", "--rounds", "1", "--n", "3")
    rows = [line for line in out.splitlines() if line.startswith(("| a |", "| b |"))]
    assert len(rows) == 2


def test_commit_cost() -> None:
    out = _run("bench.commit_cost", "--rows", "2", "--n", "3")
    assert "| 2 | 3 |" in out
