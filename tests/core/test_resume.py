"""Exact resume, graceful stops and crash-safe saves."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import ffcore
from ffcore.checkpoint import load_checkpoint, read_checkpoint
from ffcore.config import TrainConfig
from ffcore.errors import CheckpointError, InvalidValueError, TrainingInterrupted
from ffcore.plugin_manager import FFPluginManager
from ffcore.runs import resume_run, save_run
from ffcore.training import TrainingRun, build_run, train
from tests.core.scripts import start_script
from tests.core.test_cli import ff_executable

CONFIG = {"layers": [32, 16], "epochs": 4, "batch_size": 200, "device": "cpu", "seed": 5}


def final_weights(run: TrainingRun) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def uninterrupted(**extra: object) -> tuple[dict[str, torch.Tensor], TrainingRun]:
    run = build_run(TrainConfig(**{**CONFIG, **extra}))  # type: ignore[arg-type]
    train(run)
    return final_weights(run), run


@pytest.mark.parametrize(
    ("negatives", "precision", "ema_decay"),
    [
        ("random", "fp32", 0.0),
        ("hard", "fp32", 0.0),
        ("random", "bf16", 0.0),
        ("random", "fp32", 0.9),
    ],
)
def test_resume_mid_epoch_is_bitwise_equal(
    negatives: str, precision: str, ema_decay: float, tmp_path: Path, manager: FFPluginManager
) -> None:
    expected, reference = uninterrupted(
        negatives=negatives, precision=precision, ema_decay=ema_decay
    )
    path = tmp_path / "run.pt"

    class StopAt:
        """Sends this process SIGINT during the 8th batch: the first of epoch 2 (7 a epoch)."""

        @ffcore.hookimpl
        def fflib_batch_end(self, run: TrainingRun) -> None:
            if run.step == 7:
                os.kill(os.getpid(), signal.SIGINT)

    manager.register(StopAt(), name="stop-at")
    settings = {**CONFIG, "negatives": negatives, "precision": precision, "ema_decay": ema_decay}
    run = build_run(TrainConfig(**settings))  # type: ignore[arg-type]
    with pytest.raises(TrainingInterrupted) as info:
        train(run, checkpoint=lambda current: save_run(current, path))
    assert info.value.signum == signal.SIGINT
    assert info.value.checkpoint == str(path)
    assert (info.value.epoch, info.value.batch) == (1, 1)
    manager.unregister("stop-at")

    torch.manual_seed(12345)  # whatever the RNG is now, resuming restores it
    resumed = resume_run(path)
    assert (resumed.epoch, resumed.batch, resumed.step) == (1, 1, 8)
    train(resumed)
    assert_bitwise_equal(final_weights(resumed), expected)
    for key in ("loss", "val_acc"):
        assert [h[key] for h in resumed.history] == pytest.approx(
            [h[key] for h in reference.history]
        )


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_after_periodic_save_is_bitwise_equal(
    ema_decay: float, tmp_path: Path, manager: FFPluginManager
) -> None:
    expected, _ = uninterrupted(ema_decay=ema_decay)
    path = tmp_path / "run.pt"

    class Crash:
        @ffcore.hookimpl
        def fflib_epoch_end(self, epoch: int) -> None:
            if epoch == 2:
                raise RuntimeError("power cut")

    manager.register(Crash(), name="crash")
    settings = {**CONFIG, "save_every": 2, "ema_decay": ema_decay}
    run = build_run(TrainConfig(**settings))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="power cut"):
        train(run, checkpoint=lambda current: save_run(current, path))
    manager.unregister("crash")
    meta = read_checkpoint(path)["meta"]
    assert (meta["epoch"], meta["batch"], meta["complete"]) == (2, 0, False)
    resumed = resume_run(path)
    train(resumed)
    assert_bitwise_equal(final_weights(resumed), expected)
    assert len(resumed.history) == 4


def test_resume_can_extend_epochs_but_not_change_the_model(tmp_path: Path) -> None:
    run = build_run(TrainConfig(**{**CONFIG, "epochs": 1}))  # type: ignore[arg-type]
    train(run)
    path = save_run(run, tmp_path / "done.pt")
    longer = resume_run(path, {"epochs": 2})
    train(longer)
    assert longer.epoch == 2 and len(longer.history) == 2
    with pytest.raises(InvalidValueError, match="setting when resuming: 'layers'"):
        resume_run(path, {"layers": [8]})


def test_resume_needs_a_run_checkpoint(tmp_path: Path) -> None:
    model = ffcore.create_model("ffnet", input_shape=(4,), num_classes=2, layers=[4])
    from ffcore.checkpoint import save_checkpoint

    path = save_checkpoint(
        tmp_path / "plain.pt",
        model,
        model_name="ffnet",
        model_options={"layers": [4]},
        input_shape=(4,),
        num_classes=2,
    )
    with pytest.raises(CheckpointError, match="no training state"):
        resume_run(path)


def test_sigint_to_a_real_ff_train_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "interrupted.pt"
    command = [ff_executable(), "train", "--preset", "plain", "--layers", "256", "--epochs", "500"]
    process = subprocess.Popen(
        [*command, "--device", "cpu", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the model line: training has started
    assert line.startswith("model ffnet")
    process.stdout.readline()  # epoch 1 done
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT
    assert "SIGINT: stopped in epoch" in stderr and f"ff train --resume {out}" in stderr
    assert "Traceback" not in stderr
    loaded = load_checkpoint(out)
    assert loaded.meta["complete"] is False
    assert loaded.meta["epoch"] >= 1


SAVER = """
import sys, torch
from pathlib import Path
from ffcore.checkpoint import atomic_write
target = Path(sys.argv[1])
big = torch.randn(64, 1024, 1024)  # 256 MiB per save: slow enough to be killed mid-way
generation = 0
while True:
    payload = {"generation": generation, "data": big + generation}
    atomic_write(target, lambda f: torch.save(payload, f))
    print(generation, flush=True)
    generation += 1
"""


def test_kill_9_during_a_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    process = start_script(tmp_path / "saver.py", SAVER, str(target), ready="0")  # a save is done
    time.sleep(0.3)  # the next save is under way
    process.kill()
    process.wait(timeout=30)
    payload = torch.load(target, weights_only=True)
    generation = payload["generation"]
    assert payload["data"].shape == (64, 1024, 1024)
    assert float(payload["data"].mean() - generation) == pytest.approx(0.0, abs=1e-2)
