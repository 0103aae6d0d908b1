"""Benchmark scripts run and report what they say (tiny settings, digits)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.runs import save_run
from ffcore.training import build_run, train

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_speed_worker(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``benchmarks/speed_worker.py`` with ``args``; the JSON timing it prints last."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "speed_worker.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    timing: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return timing


def run_accuracy_on_digits(*args: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``benchmarks/accuracy.py --dataset digits`` on the CPU, one thread, with ``args``:
    its JSON rows and its whole output."""
    command = [sys.executable, str(BENCHMARKS / "accuracy.py"), "--dataset", "digits"]
    result = subprocess.run(
        [*command, "--device", "cpu", "--threads", "1", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return rows, result.stdout


def test_accuracy_benchmark_prints_runs_curves_and_tables() -> None:
    rows, output = run_accuracy_on_digits(
        "--epochs", "4", "--layers", "64", "--variants", "default", "bp", "--curve"
    )
    assert [row["variant"] for row in rows] == ["default", "bp"]
    for row in rows:
        assert [point["epoch"] for point in row["curve"]] == [1, 2, 3, 4]
        seconds = [point["seconds"] for point in row["curve"]]
        assert 0 < seconds[0] < seconds[1] < seconds[2] < seconds[3] <= row["train_seconds"]
        # the last point is the trained model on the test set: the final figure
        assert row["curve"][-1]["test_acc"] == row["test_acc"]
    assert rows[1]["config"]["model"] == "bp" and rows[1]["test_acc"] > 0.5
    assert "| variant | epochs | training time | test accuracy |" in output
    assert "| epoch | default | bp |" in output


def test_accuracy_control_keeps_ff_layers_at_init_and_trains_the_readout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accuracy = load_benchmark("accuracy")
    recipe = TrainConfig(
        model="ffc", layers=[32], epochs=10, device="cpu", model_options={"ff_epochs": 5}
    )
    control = accuracy.control_of(recipe)
    assert control.model_options["ff_epochs"] == 0 and control.epochs == recipe.epochs
    assert control.layers == recipe.layers and control.model == "ffc"
    built: list[Any] = []
    real_build_run = accuracy.build_run

    def recording_build_run(config: TrainConfig) -> Any:
        built.append(real_build_run(config))
        return built[-1]

    monkeypatch.setattr(accuracy, "build_run", recording_build_run)
    args = argparse.Namespace(curve=False, tryall=False)
    row = accuracy.measure("recipe", control, args, control=True)
    assert row["variant"] == "recipe-control" and row["ff_weights_unchanged"] is True
    model = built[0].model
    torch.manual_seed(recipe.seed)  # the same initial weights, as build_run draws them
    fresh = real_build_run(control).model
    for before, after in zip(fresh.layers.parameters(), model.layers.parameters(), strict=True):
        assert torch.equal(before, after)
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)  # it trained
    assert row["test_acc"] > 0.5  # a trained read-out on random features, far above chance


def accuracy_args(**given: object) -> argparse.Namespace:
    """``benchmarks/accuracy.py``'s arguments: its defaults on Fashion-MNIST, and ``given``."""
    defaults = {
        "dataset": "fashion-mnist",
        "epochs": 5,
        "recipe_epochs": None,
        "use": 1.0,
        "layers": None,
        "seed": 0,
        "device": "cpu",
        "precision": "fp32",
        "val_split": None,
        "ema_decay": None,
    }
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize("val_split", [None, 0.0, 0.2])
def test_accuracy_val_split_reaches_every_variant(val_split: float | None) -> None:
    accuracy = load_benchmark("accuracy")
    args = accuracy_args(layers=[4000], seed=1, val_split=val_split)
    expected = TrainConfig().val_split if val_split is None else val_split
    for variant in ("recipe", "bp", "default"):
        config = accuracy.config_for(variant, args)
        assert config.val_split == expected and config.layers == [4000], variant
    recipe = accuracy.config_for("recipe", args)
    assert recipe.model == "ffc" and recipe.loss == "softmax"  # the recipe's own settings
    assert accuracy.control_of(recipe).val_split == expected


@pytest.mark.parametrize("ema_decay", [None, 0.0, 0.999])
def test_accuracy_ema_decay_reaches_every_variant_and_control(ema_decay: float | None) -> None:
    accuracy = load_benchmark("accuracy")
    args = accuracy_args(ema_decay=ema_decay)
    recipe = accuracy.config_for("recipe", args)
    own = recipe.ema_decay if ema_decay is None else ema_decay
    assert accuracy.control_of(recipe).ema_decay == recipe.ema_decay == own
    bp = accuracy.config_for("bp", args)
    assert bp.ema_decay == (TrainConfig().ema_decay if ema_decay is None else ema_decay)


def test_accuracy_control_needs_a_readout() -> None:
    accuracy = load_benchmark("accuracy")
    with pytest.raises(InvalidValueError, match=r"model.*'ffnet'.*--control"):
        accuracy.control_of(TrainConfig(model="ffnet", layers=[8]))


def test_accuracy_control_flag_runs_recipe_then_control() -> None:
    rows, _ = run_accuracy_on_digits(
        "--recipe-epochs", "2", "--layers", "16", "--variants", "recipe", "--control", "--tryall"
    )
    assert [row["variant"] for row in rows] == ["recipe", "recipe-control"]
    assert rows[1]["ff_weights_unchanged"] is True and rows[1]["epochs"] == rows[0]["epochs"]
    assert rows[1]["config"]["model_options"]["ff_epochs"] == 0
    assert 0 < rows[0]["tryall_test_acc"] <= 1 and "tryall_test_acc" not in rows[1]


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


def test_allocator_benchmark_compares_both_settings() -> None:
    command = [sys.executable, str(BENCHMARKS / "allocator.py"), "--width", "64"]
    options = ["--batches", "32", "--rounds", "2", "--repeats", "2"]
    result = subprocess.run([*command, *options], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert row["glibc_ms"] > 0 and row["fflib_ms"] > 0
    low, high = row["speedup_range"]
    assert low <= row["speedup"] <= high
    assert row["glibc_faults_per_step"] >= 0 and "| ffnet-train 64 | 32 |" in result.stdout


def test_speed_worker_times_an_epoch_of_the_size_asked_for() -> None:
    options = ["--impl", "ours", "--case", "epoch-overhead", "--width", "16", "--threads", "1"]
    timings = [run_speed_worker(*options, "--samples", str(samples)) for samples in (256, 2048)]
    assert [timing["batches"] for timing in timings] == [2, 16]  # batches of 128
    for timing in timings:
        assert timing["epoch_seconds"] > 0 and 0 <= timing["outside_fraction"] < 1


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script, not a package) as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_speed() -> ModuleType:
    return load_benchmark("speed")


def speed_with(worker: Any, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/speed.py`` with ``worker`` in place of the subprocess it times."""
    speed = load_speed()
    monkeypatch.setattr(speed, "worker", worker)
    return speed


#: Seconds per call the fake worker reports: (worker impl, variant or tree, precision).
FAKE_SECONDS = {
    ("ours", None, "fp32"): 0.04,
    ("ours", None, "bf16"): 0.01,
    ("ours", "before", "fp32"): 0.05,
    ("ours", "before", "bf16"): 0.02,
    ("seed", None, "fp32"): 0.1,
    ("loewex", "shipped", "fp32"): 0.08,
    ("loewex", "ff-only", "fp32"): 0.06,
    ("matmul", None, "fp32"): 0.02,
    ("matmul", None, "bf16"): 0.005,
}
#: FLOPs per call the fake worker counts, by worker impl.
FAKE_FLOPS = {"ours": 2e9, "seed": 3e9, "loewex": 3e9, "matmul": 1e9}


def speed_args(tmp_path: Path, **overrides: Any) -> argparse.Namespace:
    options: dict[str, Any] = {
        "width": 2000,
        "rounds": 3,
        "precisions": ["fp32", "bf16"],
        "threads": 1,
        "device": "cpu",
        "repeats": 1,
        "cases": ["ffnet-train", "ffc-infer"],
        "cache": tmp_path,
        "clock": "wall",
    }
    return argparse.Namespace(**{**options, **overrides})


class FakeWorker:
    """Stands in for ``speed.worker``: records each call, answers from FAKE_SECONDS."""

    def __init__(self, seconds: dict[tuple[str, str | None, str], Any] | None = None) -> None:
        self.seconds = seconds or FAKE_SECONDS
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, impl: str, case: str, batch: int, width: int, args: Any, **options: Any
    ) -> Any:
        if case == "epoch-overhead":
            return {"outside_fraction": 0.01, "epoch_seconds": 1.0, "batches": 1}
        tree = options.get("tree")
        which = options.get("variant") or (tree.name if tree is not None else None)
        call = {"impl": impl, "case": case, "batch": batch, "width": width, "which": which}
        self.calls.append({**call, **options})
        answer = self.seconds[impl, which, options.get("precision", "fp32")]
        if callable(answer):
            answer = answer()
        result: dict[str, Any] = {"median_seconds": answer, "peak_mib": 100.0}
        if options.get("flops"):
            result["flops"] = FAKE_FLOPS[impl]
        return result


def peers(speed: ModuleType) -> list[Any]:
    return [
        speed.Peer("fflib-0.3.0", "seed", Path("seed")),
        speed.Peer("loewex", "loewex", Path("loewex-checkout")),
        speed.Peer("before", "tree", Path("before")),
    ]


def test_speed_times_every_peer_beside_fflib_with_flops_and_the_ceiling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeWorker()
    speed = speed_with(fake, monkeypatch)
    args = speed_args(tmp_path)
    rows = speed.compare(args, peers(speed))
    assert [(r["name"], r["config"]["layers"], r["config"]["batch"]) for r in rows] == [
        ("ffnet-train", 2, 128),
        ("ffnet-train", 2, 512),
        ("ffnet-train", 3, 100),
        ("ffc-infer", 2, 10_000),
    ]
    train = rows[0]["results"]
    assert set(train) == {
        "ours",
        "ours_bf16",
        "before",
        "before_bf16",
        "fflib-0.3.0",
        "loewex",
        "loewex-ff-only",
        "ceiling",
        "ceiling_bf16",
    }
    # ratios are FFLib's samples/s over the peer's, at each precision of FFLib
    assert train["loewex"]["ratio"] == pytest.approx(0.08 / 0.04)
    assert train["loewex"]["ratio_bf16"] == pytest.approx(0.08 / 0.01)
    assert train["loewex-ff-only"]["ratio_rounds"] == pytest.approx([0.06 / 0.04] * 3)
    assert train["fflib-0.3.0"]["ratio"] == pytest.approx(0.1 / 0.04)
    # an FFLib tree is compared at its own precision only
    assert (
        train["before"]["ratio"] == pytest.approx(0.05 / 0.04)
        and "ratio_bf16" not in train["before"]
    )
    assert train["before_bf16"]["ratio_bf16"] == pytest.approx(0.02 / 0.01)
    assert "ratio" not in train["before_bf16"]
    # FLOPs per sample, GFLOP/s, and the fraction of the ceiling at the same precision
    assert train["ours"]["flops_per_sample"] == pytest.approx(2e9 / 128)
    assert train["ours"]["gflops"] == pytest.approx(2e9 / 0.04 / 1e9)
    assert train["ceiling"]["gflops"] == pytest.approx(1e9 / 0.02 / 1e9)
    assert train["ours"]["ceiling_fraction"] == pytest.approx(1.0)
    assert train["ours_bf16"]["ceiling_fraction"] == pytest.approx((2e9 / 0.01) / (1e9 / 0.005))
    assert train["loewex"]["ceiling_fraction"] == pytest.approx((3e9 / 0.08) / (1e9 / 0.02))
    assert train["loewex"]["ceiling_fraction_rounds"] == pytest.approx([0.75] * 3)
    # loeweX's prediction has no FF-only variant; its ceiling is the prediction's products
    assert "loewex" in rows[3]["results"] and "loewex-ff-only" not in rows[3]["results"]
    predict_ceiling = [c for c in fake.calls if c["impl"] == "matmul" and c["batch"] == 1000]
    assert {c["case"] for c in predict_ceiling} == {"matmul-predict"}
    deep = [c for c in fake.calls if c["case"] == "ffnet-train" and c["batch"] == 100]
    assert {(c["width"], c["layers"]) for c in deep} == {(1000, 3)}
    # FLOPs are counted once per implementation and case, in its first run
    counted = [(c["case"], c["batch"], c["impl"], c["which"], c["precision"]) for c in fake.calls]
    flopped = [key for key, c in zip(counted, fake.calls, strict=True) if c["flops"]]
    assert len(flopped) == len(set(counted)) == len(set(flopped))
    for key in flopped:
        assert fake.calls[counted.index(key)]["flops"]
    # each round starts with another contender
    firsts = [c for c in fake.calls if c["case"] == "ffnet-train" and c["batch"] == 128]
    per_round = len(firsts) // 3
    assert len({(c["impl"], c["which"], c["precision"]) for c in firsts[::per_round]}) == 3
    # one JSON line per measurement, with the fields the tables use
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == sum(len(r["results"]) for r in rows)
    loewex = next(r for r in records if r["impl"] == "loewex" and r["config"]["batch"] == 128)
    assert loewex["variant"] == "shipped" and loewex["samples_per_s"] == pytest.approx(1600)
    assert {"flops_per_sample", "gflops", "ceiling_fraction", "ratio_rounds"} <= set(loewex)


def test_speed_table_shows_ratios_their_round_ranges_and_the_ceiling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_seconds = iter([0.1, 0.3, 0.2] * 20)  # FFLib 0.3.0 slows down in round 2
    fake = FakeWorker({**FAKE_SECONDS, ("seed", None, "fp32"): lambda: next(seed_seconds)})
    speed = speed_with(fake, monkeypatch)
    args = speed_args(tmp_path, precisions=["fp32"], cases=["ffnet-train"])
    rows = speed.compare(args, peers(speed))
    seed = rows[0]["results"]["fflib-0.3.0"]
    assert seed["ratio_rounds"] == pytest.approx([2.5, 7.5, 5.0])
    assert seed["ratio"] == pytest.approx(0.2 / 0.04)  # of the medians
    capsys.readouterr()
    speed.print_table(rows, args.precisions)
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    assert header.split() == [
        "case", "layers", "batch", "implementation", "samples/s", "ratio", "rounds",
        "MFLOP/smp", "GFLOP/s", "%", "ceil", "rounds", "peak", "MiB",
    ]  # fmt: skip
    first = lines.index(header) + 1
    assert lines[first].split() == [
        "ffnet-train", "2x2000", "128", "ours", "3,200", "-", "-", "15.62", "50", "100",
        "100-100", "100",
    ]  # fmt: skip
    seed_line = next(line for line in lines[first:] if "fflib-0.3.0" in line).split()
    assert seed_line[:5] == ["fflib-0.3.0", "640", "5.00", "2.50-7.50", "23.44"]
    ceiling_line = next(line for line in lines[first:] if line.split()[0] == "ceiling").split()
    assert ceiling_line == ["ceiling", "-", "-", "-", "-", "50", "-", "-", "-"]
    deep = next(line for line in lines if "3x1000" in line).split()
    assert deep[:3] == ["ffnet-train", "3x1000", "100"]


def test_speed_bf16_table_shows_fp32_peers_against_fflib_at_bf16(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = speed_with(FakeWorker(), monkeypatch)
    args = speed_args(tmp_path, cases=["ffc-infer"])
    rows = speed.compare(args, peers(speed))
    capsys.readouterr()
    speed.print_table(rows, ["bf16"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    column = header.index("implementation")
    labels = [line[column : column + 22].strip() for line in lines[lines.index(header) + 1 :]]
    assert labels == [
        "ours_bf16",
        "before_bf16",
        "fflib-0.3.0 (fp32)",
        "loewex (fp32)",
        "ceiling_bf16",
    ]
    assert "ours " not in out and "before " not in out  # the fp32 runs are in the fp32 table


def test_speed_reports_a_failing_peer_and_carries_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = load_speed()

    def broken() -> float:
        raise speed.WorkerError("loewex ffnet-train failed:\nImportError: no module src")

    fake = FakeWorker({**FAKE_SECONDS, ("loewex", "shipped", "fp32"): broken})
    monkeypatch.setattr(speed, "worker", fake)
    args = speed_args(tmp_path, precisions=["fp32"], cases=["ffnet-train"])
    rows = speed.compare(args, peers(speed))
    assert all("loewex" not in row["results"] for row in rows)
    assert all("loewex-ff-only" in row["results"] for row in rows)
    shipped = [c for c in fake.calls if c["impl"] == "loewex" and c["which"] == "shipped"]
    assert len(shipped) == 3  # once per case: not retried in the later rounds
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "error" in line]
    assert len(errors) == 3 and "no module src" in errors[0]["error"]

    def ours_broken() -> float:
        raise speed.WorkerError("ours ffnet-train failed")

    monkeypatch.setattr(
        speed, "worker", FakeWorker({**FAKE_SECONDS, ("ours", None, "fp32"): ours_broken})
    )
    with pytest.raises(speed.WorkerError, match="ours ffnet-train failed"):
        speed.compare(args, peers(speed))


def test_speed_parses_peers_by_name() -> None:
    speed = load_speed()
    assert speed.parse_peer("loewex=/tmp/ff") == speed.Peer("loewex", "loewex", Path("/tmp/ff"))
    assert speed.parse_peer("before=/tmp/prev") == speed.Peer("before", "tree", Path("/tmp/prev"))
    assert speed.parse_peer("fflib-0.3.0") == speed.Peer("fflib-0.3.0", "seed")
    assert speed.parser().parse_args([]).peers is None
    args = speed.parser().parse_args(["--peer", "loewex=/a", "--peer", "fflib=/b"])
    assert [(p.name, p.kind) for p in args.peers] == [("loewex", "loewex"), ("fflib", "tree")]
    for bad in ("loewex", "=/a", "ours=/a", "my peer=/a", "before="):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(bad))):
            speed.parse_peer(bad)


def test_speed_refuses_a_peer_name_given_twice(tmp_path: Path) -> None:
    speed = load_speed()
    with pytest.raises(SystemExit, match="before"):
        speed.main(["--peer", "before=/a", "--peer", "before=/b", "--cache", str(tmp_path)])


def test_speed_skips_a_peer_whose_checkout_is_missing_and_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = load_speed()
    checkout, tree = tmp_path / "ff", tmp_path / "tree"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "ff_model.py").write_text("")
    (tree / "ffcore").mkdir(parents=True)
    (tree / "ffcore" / "__init__.py").write_text("")
    wanted = [
        speed.Peer("loewex", "loewex", checkout),
        speed.Peer("loewex-old", "loewex", tmp_path / "absent"),
        speed.Peer("before", "tree", tree),
        speed.Peer("after", "tree", tmp_path / "nowhere"),
    ]
    ready = speed.available_peers(wanted, tmp_path)
    assert [peer.name for peer in ready] == ["loewex", "before"]
    captured = capsys.readouterr()
    assert "skipping peer loewex-old" in captured.err
    assert f"git clone https://github.com/loeweX/Forward-Forward {tmp_path / 'absent'}" in (
        captured.err
    )
    assert "skipping peer after" in captured.err and "git worktree add" in captured.err
    skipped = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r["name"], r["peer"]) for r in skipped] == [
        ("peer-skipped", "loewex-old"),
        ("peer-skipped", "after"),
    ]


def test_speed_runs_a_tree_with_the_plugins_its_own_pyproject_declares(tmp_path: Path) -> None:
    speed = load_speed()
    tree = tmp_path / "tree"
    (tree / "plugins").mkdir(parents=True)
    (tree / "pyproject.toml").write_text(
        '[project]\nname = "fflib"\nversion = "9.9"\n'
        '[project.entry-points.fflib]\nonly-plugin = "only_plugin_module"\n'
        '[tool.setuptools.package-dir]\nffplugins = "plugins/ffplugins"\n'
    )
    env = dict(speed.tree_environment(tree, tmp_path / "cache"))
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[:2] == [str(tree), str(tree / "plugins")]
    assert env["FFLIB_BUILTIN_PLUGINS_ONLY"] == "1"
    script = (
        "from importlib import metadata\n"
        "points = metadata.entry_points(group='fflib')\n"
        "print(metadata.version('fflib'), sorted(p.name for p in points if p.dist.name == 'fflib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        cwd=tmp_path,  # as a worker script runs: not beside an editable install's egg-info
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=1) == ["9.9", "['only-plugin']\n"]


def test_speed_worker_counts_the_ceilings_flops() -> None:
    options = ["--impl", "matmul", "--width", "16", "--batch", "8", "--threads", "1"]
    options += ["--repeats", "1", "--flops", "--layers", "3"]
    counts = {
        case: run_speed_worker(*options, "--case", case)["flops"]
        for case in ("matmul", "matmul-predict")
    }
    products = 794 * 16 + 16 * 16 * 2  # multiply-adds per row, three layers
    assert counts["matmul"] == 2 * 2 * (2 * 8) * products  # forward and weight gradient
    assert counts["matmul-predict"] == 2 * 8 * products


#: A stand-in for loeweX's ``src/utils.py`` (not its code): the API the worker calls, with
#: loeweX's imports, logging the options it is built with.
FAKE_LOEWEX_UTILS = """
import json, os
import torch
from hydra.utils import get_original_cwd
from omegaconf import OmegaConf


class Model(torch.nn.Module):
    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.layer = torch.nn.Linear(784, opt.model.hidden_dim)

    def forward(self, inputs, labels):
        z = torch.cat([inputs["pos_images"], inputs["neg_images"]]).reshape(-1, 784)
        outputs = {"Loss": self.layer(z).square().mean().reshape(1)}
        return self.forward_downstream_classification_model(inputs, labels, outputs)

    def forward_downstream_classification_model(self, inputs, labels, scalar_outputs=None):
        scalar_outputs = scalar_outputs or {"Loss": torch.zeros(1)}
        z = inputs["neutral_sample"].reshape(-1, 784)
        with torch.no_grad():
            scalar_outputs["classification"] = self.layer(z).sum()
        return scalar_outputs


def get_model_and_optimizer(opt):
    with open(os.environ["FAKE_LOEWEX_LOG"], "a") as log:
        log.write(json.dumps({**vars(opt.model), "batch_size": opt.input.batch_size}) + "\\n")
    print(opt)  # loeweX prints its model here: it must not spoil the JSON line
    model = Model(opt)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def preprocess_inputs(opt, inputs, labels):
    return inputs, labels


def log_results(result_dict, scalar_outputs, num_steps):
    for key, value in scalar_outputs.items():
        result_dict[key] += float(value) / num_steps
    return result_dict
"""


def test_speed_worker_runs_loewex_as_shipped_and_without_its_extras(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "__init__.py").write_text("")
    (tmp_path / "src" / "utils.py").write_text(FAKE_LOEWEX_UTILS)
    log = tmp_path / "options.jsonl"
    options = ["--impl", "loewex", "--width", "8", "--layers", "3", "--threads", "1"]
    options += ["--repeats", "2", "--flops"]
    env = {**os.environ, "FAKE_LOEWEX_LOG": str(log), "PYTHONPATH": str(tmp_path)}
    flops = {}
    for case, batch, variant in (
        ("ffnet-train", 16, "shipped"),
        ("ffnet-train", 16, "ff-only"),
        ("ffc-infer", 2000, "shipped"),
    ):
        timing = run_speed_worker(
            *options, "--case", case, "--batch", str(batch), "--variant", variant, env=env
        )
        assert len(timing["times"]) == 2
        flops[case, variant] = timing["flops"]
    built = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(b["peer_normalization"], b["batch_size"]) for b in built] == [
        (0.03, 16),
        (0.0, 16),
        (0.03, 1000),  # predicts in chunks of 1,000
    ]
    assert {(b["hidden_dim"], b["num_layers"]) for b in built} == {(8, 3)}
    forward = 2 * 784 * 8  # FLOPs per row of the stand-in's layer
    assert flops["ffnet-train", "ff-only"] == 2 * 2 * 16 * forward  # no side classifier pass
    assert flops["ffnet-train", "shipped"] == 2 * 2 * 16 * forward + 16 * forward
    assert flops["ffc-infer", "shipped"] == 2000 * forward


def test_speed_scaling_prints_batch_width_and_epoch_tables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    def fake_worker(impl: str, case: str, batch: int, *rest: Any, **options: Any) -> Any:
        if case == "epoch-overhead":  # one second per 10,000 samples
            return {"outside_fraction": 0.01, "epoch_seconds": options["samples"] / 10_000}
        return {"median_seconds": batch / 1000, "peak_mib": 100.0}  # 1,000 samples/s

    speed = speed_with(fake_worker, monkeypatch)
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
    options = ["--precision", "bf16", "--width", "32", "--batch", "16", "--threads", "1"]
    for impl in ("ours", "matmul"):
        timing = run_speed_worker(*options, "--repeats", "2", "--impl", impl)
        assert len(timing["times"]) == 2 and timing["median_seconds"] > 0


def test_the_scaling_model_is_bounded_by_the_slowest_stage_and_the_links() -> None:
    scaling = load_benchmark("scaling")
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
        [*command, "--batches", "32", "--steps", "2", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["mode"] for row in rows] == ["data", "layers"]
    for row in rows:
        assert row["two_processes"] > 0 and [r["rank"] for r in row["ranks"]] == [0, 1]
        assert all(0 <= r["wait_share"] <= 1 for r in row["ranks"])
        # two alternating rounds; the figure is their median, within their range
        assert len(row["rounds"]) == 2
        low, high = row["vs_1_thread_range"]
        assert low <= row["vs_1_thread"] <= high
    assert rows[1]["ranks"][0]["holds"] == "layers 0-0"  # the pipeline split the two layers
    assert rows[1]["ranks"][0]["bytes_per_batch"] == 4 * 64 * 32  # 64 rows of 32 floats
    assert "| net | batch | Gbit/s | pipeline speedup" in result.stdout


def test_speed_worker_cpu_clock_leaves_out_time_the_process_does_not_run() -> None:
    worker = load_benchmark("speed_worker")

    def nap() -> None:  # what another process's turn on the CPU looks like from here
        time.sleep(0.05)

    assert min(worker.timed(nap, 2, 0, "wall")) >= 0.05
    assert max(worker.timed(nap, 2, 0, "cpu")) < 0.02


def test_speed_with_chosen_cases_runs_only_their_comparison(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeWorker()
    speed = speed_with(fake, monkeypatch)
    absent = tmp_path / "absent"
    options = ["--quick", "--precisions", "fp32", "--cases", "ffc-infer"]
    speed.main([*options, "--peer", f"loewex={absent}", "--cache", str(tmp_path)])
    assert {call["case"] for call in fake.calls} == {"ffc-infer", "matmul-predict"}
    out = capsys.readouterr().out
    assert "ffc-infer" in out and "scaling" not in out and "epoch" not in out
