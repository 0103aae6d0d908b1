"""Benchmark scripts run and report what they say (tiny settings, digits)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ffcore.config import TrainConfig
from ffcore.runs import save_run
from ffcore.training import build_run, train

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_accuracy_benchmark_prints_runs_curves_and_tables() -> None:
    command = [sys.executable, str(BENCHMARKS / "accuracy.py"), "--dataset", "digits"]
    options = ["--epochs", "4", "--layers", "64", "--device", "cpu", "--threads", "1"]
    result = subprocess.run(
        [*command, *options, "--variants", "default", "bp", "--curve"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["variant"] for row in rows] == ["default", "bp"]
    for row in rows:
        assert [point["epoch"] for point in row["curve"]] == [1, 2, 3, 4]
        seconds = [point["seconds"] for point in row["curve"]]
        assert 0 < seconds[0] < seconds[1] < seconds[2] < seconds[3] <= row["train_seconds"]
        # the last point is the trained model on the test set: the final figure
        assert row["curve"][-1]["test_acc"] == row["test_acc"]
    assert rows[1]["config"]["model"] == "bp" and rows[1]["test_acc"] > 0.5
    assert "| variant | epochs | training time | test accuracy |" in result.stdout
    assert "| epoch | default | bp |" in result.stdout


def test_denormals_benchmark_times_both_modes(tmp_path: Path) -> None:
    run = build_run(TrainConfig(layers=[16], epochs=1, device="cpu"))
    metrics = train(run)
    checkpoint = save_run(run, tmp_path / "run.pt", metrics)
    command = [sys.executable, str(BENCHMARKS / "denormals.py"), str(checkpoint)]
    options = ["--batches", "2", "--rounds", "1", "--repeats", "1"]
    result = subprocess.run([*command, *options], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["flushed"] for row in rows] == [True, False]
    for row in rows:
        assert row["ms_per_batch"] > 0 and 0 <= row["denormal_state_share"] <= 1


def test_speed_worker_times_an_epoch_of_the_size_asked_for() -> None:
    command = [sys.executable, str(BENCHMARKS / "speed_worker.py"), "--impl", "ours"]
    options = ["--case", "epoch-overhead", "--width", "16", "--threads", "1"]
    timings = []
    for samples in (256, 2048):
        result = subprocess.run(
            [*command, *options, "--samples", str(samples)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        timings.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert [timing["batches"] for timing in timings] == [2, 16]  # batches of 128
    for timing in timings:
        assert timing["epoch_seconds"] > 0 and 0 <= timing["outside_fraction"] < 1
