"""Benchmark scripts run and report what they say (tiny settings, digits)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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


def load_speed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("speed", BENCHMARKS / "speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("speed", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_speed_compares_each_precision_with_fflib_030_and_its_own_ceiling(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = load_speed()
    seconds = {
        ("matmul", "fp32"): 0.02,
        ("matmul", "bf16"): 0.005,
        ("ours", "fp32"): 0.04,
        ("ours", "bf16"): 0.01,
        ("seed", "fp32"): 0.1,
    }
    calls: list[tuple[str, str, str]] = []

    def fake_worker(
        impl: str, case: str, *rest: Any, precision: str = "fp32", **options: Any
    ) -> dict[str, Any]:
        calls.append((impl, case, precision))
        if case == "epoch-overhead":
            return {"outside_fraction": 0.01, "epoch_seconds": 1.0, "batches": 1}
        return {"median_seconds": seconds[impl, precision], "peak_mib": 100.0}

    monkeypatch.setattr(speed, "worker", fake_worker)
    args = argparse.Namespace(
        width=2000, rounds=3, precisions=["fp32", "bf16"], threads=1, device="cpu", repeats=1
    )
    rows = speed.compare(args, Path("seed"))
    train = rows[0]
    assert train["ratio"] == pytest.approx(0.1 / 0.04)
    assert train["ratio_bf16"] == pytest.approx(0.1 / 0.01)
    # the matmuls of a step take half the step's time at either precision
    assert train["ceiling_fraction"] == pytest.approx(0.5)
    assert train["ceiling_fraction_bf16"] == pytest.approx(0.5)
    firsts = [c for c in calls if c[1] == "ffnet-train"][::3][:3]
    assert [(impl, precision) for impl, _, precision in firsts] == [
        ("ours", "fp32"),
        ("ours", "bf16"),
        ("seed", "fp32"),
    ]  # each round starts with another contender
    speed.print_table(rows, args.precisions)
    out = capsys.readouterr().out
    assert "FFLib at fp32" in out and "FFLib at bf16" in out


def test_speed_reports_each_rounds_ratio_beside_the_median(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = load_speed()
    seed_seconds = iter([0.1, 0.3, 0.2] * 20)  # FFLib 0.3.0 slows down in round 2

    def fake_worker(impl: str, case: str, *rest: Any, **options: Any) -> dict[str, Any]:
        if case == "epoch-overhead":
            return {"outside_fraction": 0.01, "epoch_seconds": 1.0, "batches": 1}
        seconds = next(seed_seconds) if impl == "seed" else 0.04
        return {"median_seconds": seconds, "peak_mib": 100.0}

    monkeypatch.setattr(speed, "worker", fake_worker)
    args = argparse.Namespace(
        width=2000, rounds=3, precisions=["fp32"], threads=1, device="cpu", repeats=1
    )
    train = speed.compare(args, Path("seed"))[0]
    assert train["ratio_rounds"] == pytest.approx([2.5, 7.5, 5.0])
    assert train["ratio"] == pytest.approx(0.2 / 0.04)  # of the medians
    speed.print_table([train], args.precisions)
    header, line = capsys.readouterr().out.strip().splitlines()[-2:]
    assert "rounds" in header.split()
    assert line.split()[:6] == ["ffnet-train", "128", "640", "3200", "5.00", "2.50-7.50"]


def test_speed_scaling_prints_batch_width_and_epoch_tables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = load_speed()

    def fake_worker(impl: str, case: str, batch: int, *rest: Any, **options: Any) -> Any:
        if case == "epoch-overhead":  # one second per 10,000 samples
            return {"outside_fraction": 0.01, "epoch_seconds": options["samples"] / 10_000}
        return {"median_seconds": batch / 1000, "peak_mib": 100.0}  # 1,000 samples/s

    monkeypatch.setattr(speed, "worker", fake_worker)
    args = argparse.Namespace(width=2000, threads=1, device="cpu", repeats=1)
    records = speed.scaling(args)
    capsys.readouterr()  # the JSON lines
    speed.print_scaling(records)
    lines = capsys.readouterr().out.splitlines()
    batch_row = lines[lines.index("FFLib at fp32, FFNet training, against batch") + 1]
    assert batch_row.split()[1:] == ["32", "64", "128", "256", "512", "1,024"]
    speeds = [line for line in lines if line.startswith("samples/s")]
    assert speeds[0].split()[1:] == ["1,000"] * 6
    per_10k = next(line for line in lines if line.startswith("s per 10k"))
    assert per_10k.split()[3:] == ["1.00"] * 4


def test_speed_worker_runs_bf16_steps_and_the_bf16_ceiling() -> None:
    command = [sys.executable, str(BENCHMARKS / "speed_worker.py"), "--precision", "bf16"]
    options = ["--width", "32", "--batch", "16", "--threads", "1", "--repeats", "2"]
    for impl in ("ours", "matmul"):
        result = subprocess.run(
            [*command, "--impl", impl, *options], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        timing = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(timing["times"]) == 2 and timing["median_seconds"] > 0


def load_scaling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scaling", BENCHMARKS / "scaling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scaling", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_scaling_model_is_bounded_by_the_slowest_stage_and_the_links() -> None:
    scaling = load_scaling()
    fast = 1e9  # Gbit/s: transfers cost nothing
    assert scaling.pipeline_speedup([1.0] * 4, [8.0] * 3 + [0.0], fast) == pytest.approx(4.0)
    assert scaling.pipeline_speedup([1.0, 3.0], [8.0, 0.0], fast) == pytest.approx(4 / 3)
    # a 1-second transfer (125 MB at 1 Gbit/s) behind 10 ms layers
    assert scaling.pipeline_speedup([0.01, 0.01], [1.25e8, 0.0], 1.0) < 0.03
    # four nodes: a quarter of the work each, plus six 50-microsecond hops per layer
    assert scaling.data_parallel_speedup([1.0, 1.0], [10, 10], 4, fast) == pytest.approx(
        4, rel=1e-2
    )
    # one layer of 1e8 parameters on 2 nodes at 1 Gbit/s: 3.2 s of all-reduce for 1 s of work
    assert scaling.data_parallel_speedup([1.0], [10**8], 2, 1.0) < 0.3
    assert scaling.communication_bound_batch(1e-3, 0.1) == pytest.approx(100)


def test_the_scaling_benchmark_times_both_layouts() -> None:
    command = [sys.executable, str(BENCHMARKS / "scaling.py"), "--nets", "32-16"]
    result = subprocess.run(
        [*command, "--batches", "32", "--steps", "2"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["mode"] for row in rows] == ["data", "layers"]
    for row in rows:
        assert row["two_processes"] > 0 and [r["rank"] for r in row["ranks"]] == [0, 1]
        assert all(0 <= r["wait_share"] <= 1 for r in row["ranks"])
    assert rows[1]["ranks"][0]["holds"] == "layers 0-0"  # the pipeline split the two layers
    assert rows[1]["ranks"][0]["bytes_per_batch"] == 4 * 64 * 32  # 64 rows of 32 floats
    assert "| net | batch | Gbit/s | pipeline speedup" in result.stdout
