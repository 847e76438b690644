"""`quantum-router train` then `eval` on a slice of the MMLU data: all metrics and the plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quantum_router.learning.cli import eval_main, train_main
from quantum_router.learning.datasets import load_dataset
from quantum_router.policy import load_policy

from .conftest import mmlu_dir

KEYS = {"apgr", "cpt50", "cpt80", "quality", "cost_usd", "calls"}


def test_baselines_only_table_and_json(mmlu_slice: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main(["--dataset", str(mmlu_slice), "--split", "subject"]) == 0
    table = capsys.readouterr().out
    for name in ("random", "cheapest", "best-single", "prior", "oracle", "APGR", "CPT50"):
        assert name in table
    assert eval_main(["--dataset", str(mmlu_slice), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS and out["router"] == "prior"
    assert out["routers"]["oracle"]["apgr"] > 1.0  # oracle beats the strong model: PGR above 1
    assert 0.3 < out["routers"]["random"]["apgr"] < 0.7


def test_train_then_eval_policy_on_held_out_prompts(
    mmlu_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "policy.npz"
    plot = tmp_path / "curve.png"
    argv = ["--dataset", str(mmlu_slice), "--output", str(policy_file), "--steps", "1000", "--seed", "4"]
    assert train_main([*argv, "--cost", "gpt-4-1106-preview=20", "--hidden", "16"]) == 0
    policy = load_policy(policy_file)
    assert policy.info["split"] == "random" and policy.info["seed"] == 4
    # By default a text model is fitted on the training split and is the reward model.
    assert policy.info["train_config"]["reward"] == "auto" and policy.info["reward"] == "text"
    assert policy.text_model is not None and policy.feature_spec.text_scores == 2
    # The network reads the text model's scores (which know the subject) instead of n-grams and one-hots.
    assert policy.feature_spec.ngram_buckets == 0 and policy.feature_spec.task_types == ()
    capsys.readouterr()
    # Split and seed default to the policy's, so the test rows are exactly those training held out.
    assert (
        eval_main(["--dataset", str(mmlu_slice), "--policy", str(policy_file), "--json", "--plot", str(plot)])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["router"] == "policy" and set(out) >= KEYS
    assert out["test_rows"] == policy.info["test_rows"] and out["train_rows"] == policy.info["train_rows"]
    assert 0.0 <= out["apgr"] <= 1.5 and sum(out["calls"].values()) == pytest.approx(1.0)
    assert set(out["routers"]) == {"policy", "random", "cheapest", "best-single", "prior", "oracle"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["scored"] == f"scored the held-out test split: {out['test_rows']} rows (random split, seed 4)"

    # The same rows in another folder are still the training dataset: the held-out split again.
    moved = tmp_path / "moved"
    shutil.copytree(mmlu_slice, moved)
    assert eval_main(["--dataset", str(moved), "--policy", str(policy_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_rows"] == policy.info["test_rows"]

    # Other subjects: a dataset the policy never saw, so every row is scored, and the output says so.
    other = tmp_path / "other"
    other.mkdir()
    for name in ("mmlu_sociology.csv", "mmlu_world_religions.csv"):
        shutil.copy(mmlu_dir() / name, other / name)
    rows = len(load_dataset(other))
    assert eval_main(["--dataset", str(other), "--policy", str(policy_file)]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"scored all {rows} rows of {other} (not the policy's training dataset)")
    assert "policy" in table and "prior" not in table  # no training split, so no per-subject prior
    assert eval_main(["--dataset", str(other), "--policy", str(policy_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "all" and out["test_rows"] == rows and out["train_rows"] == 0
    # An explicit split still applies.
    argv = ["--dataset", str(other), "--policy", str(policy_file), "--split", "random", "--json"]
    assert eval_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test_rows"] == round(rows * 0.2)
    assert out["scored"].startswith("scored the held-out test split")


def test_the_default_dataset_is_the_full_mmlu_copy_in_the_repository(
    mmlu_slice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QR_DATA_DIR", raising=False)
    assert eval_main(["--json", "--split", "all"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Every subject but professional_law, as the data README says: 10,000 prompts.
    assert out["test_rows"] == 10_000 and out["scored"].startswith("scored all 10000 rows of ")
    assert out["scored"].split(" of ", 1)[1].endswith("data/routellm-mmlu")
    # QR_DATA_DIR overrides it.
    monkeypatch.setenv("QR_DATA_DIR", str(mmlu_slice))
    assert eval_main(["--json", "--split", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["test_rows"] == len(load_dataset(mmlu_slice))


def test_unknown_model_price_is_an_error_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tiny.csv"
    data.write_text("prompt,model-x,model-y\nq1,True,False\nq2,False,True\n", encoding="utf-8")
    assert eval_main(["--dataset", str(data)]) == 2
    assert "--cost model-x=USD_PER_MILLION_TOKENS" in capsys.readouterr().err
    assert eval_main(["--dataset", str(data), "--cost", "model-x=1", "--cost", "model-y=5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_rows"] == 1
