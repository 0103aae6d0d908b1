"""``--keep best|last`` and ``--early-stop N``: the kept epoch's weights are tested and
saved, early stopping stops, and a resumed run keeps its best weights and patience."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import ffcore
from ffcore import training
from ffcore.checkpoint import load_checkpoint, read_checkpoint
from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError, TrainingInterrupted
from ffcore.interfaces import Probe, Split
from ffcore.plugin_manager import FFPluginManager
from ffcore.runs import resume_run, save_run
from ffcore.selection import EpochSelection
from ffcore.training import TrainingRun, build_run, train
from tests.core.checkpoint_surgery import invoke

SETTINGS: dict[str, Any] = {
    "preset": "plain",
    "layers": [16],
    "batch_size": 200,
    "device": "cpu",
    "lr_schedule": "constant",
}
#: ``ff train`` on a small plain net, for the tests that go through the command line.
PLAIN = ["train", "--preset", "plain", "--layers", "16", "--device", "cpu"]
#: Scripted validation accuracies, one per epoch: best at epoch 2, then falling.
SCRIPT = [0.2, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1]


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Scripted:
    """Scripts the validation accuracy per epoch and keeps each epoch's weights."""

    def __init__(self, script: Sequence[float]) -> None:
        self.script = list(script)
        self.run: TrainingRun | None = None
        self.epoch_weights: dict[int, dict[str, torch.Tensor]] = {}

    @ffcore.hookimpl
    def fflib_train_start(self, run: TrainingRun) -> None:
        self.run = run

    @ffcore.hookimpl
    def fflib_epoch_end(self, run: TrainingRun, epoch: int) -> None:
        self.epoch_weights[epoch + 1] = weights(run.model)


@pytest.fixture
def scripted(manager: FFPluginManager, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    plugin = Scripted(SCRIPT)
    manager.register(plugin, name="scripted")
    real = training.evaluate

    def evaluate(model: nn.Module, probe: Probe, split: Split, *args: Any, **kwargs: Any) -> float:
        run = plugin.run
        if run is not None and run.data.val is not None and split is run.data.val:
            return plugin.script[len(run.history)]
        return real(model, probe, split, *args, **kwargs)

    monkeypatch.setattr(training, "evaluate", evaluate)
    yield plugin
    manager.unregister(name="scripted")


def test_selection_counts_ties_and_patience() -> None:
    selection = EpochSelection(keep="best", patience=2)
    model = nn.Linear(2, 2)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.7, 0.6], start=1):
        assert not selection.stopped
        selection.epoch_end(epoch, {"val_acc": accuracy}, model)
    assert selection.best_epoch == 3  # the last of the tied best
    assert selection.since_best == 2 and selection.stopped
    assert selection.kept_epoch(4) == 3
    assert EpochSelection(keep="last").kept_epoch(4) == 4


def test_keep_best_tests_and_saves_the_best_epoch(scripted: Scripted, tmp_path: Path) -> None:
    run = build_run(TrainConfig(**SETTINGS, epochs=5))
    assert run.selection.keep == "best"  # the default with a validation split
    metrics = train(run)
    assert metrics["kept_epoch"] == 2 and metrics["val_acc"] == 0.9
    assert metrics["stopped_early"] == 0.0
    assert same(weights(run.model), scripted.epoch_weights[2])
    assert not same(scripted.epoch_weights[2], scripted.epoch_weights[5])
    assert metrics["test_acc"] == training.evaluate(run.model, run.probe, run.data.test)
    path = save_run(run, tmp_path / "best.pt", metrics)
    assert same(weights(load_checkpoint(path).model), scripted.epoch_weights[2])
    meta = read_checkpoint(path)["meta"]
    assert meta["kept_epoch"] == 2 and meta["complete"] is True


def test_keep_last(scripted: Scripted) -> None:
    run = build_run(TrainConfig(**SETTINGS, epochs=4, keep="last"))
    metrics = train(run)
    assert metrics["kept_epoch"] == 4 and metrics["val_acc"] == SCRIPT[3]
    assert same(weights(run.model), scripted.epoch_weights[4])


def test_early_stopping_stops_after_the_patience(scripted: Scripted, tmp_path: Path) -> None:
    run = build_run(TrainConfig(**SETTINGS, epochs=8, early_stop=2))
    metrics = train(run)
    assert run.epoch == 4 and metrics["stopped_early"] == 1.0 and metrics["kept_epoch"] == 2
    meta = read_checkpoint(save_run(run, tmp_path / "stopped.pt", metrics))["meta"]
    assert meta["complete"] is True and meta["epoch"] == 4


def test_selection_needs_a_validation_split() -> None:
    with pytest.raises(InvalidValueError, match="invalid keep: 'best'"):
        build_run(TrainConfig(**SETTINGS, epochs=1, val_split=0.0, keep="best"))
    with pytest.raises(InvalidValueError, match="invalid early_stop: 3"):
        build_run(TrainConfig(**SETTINGS, epochs=1, val_split=0.0, early_stop=3))
    run = build_run(TrainConfig(**SETTINGS, epochs=1, val_split=0.0))
    assert run.selection.keep == "last"


def test_a_resumed_run_keeps_its_best_weights_and_patience(
    scripted: Scripted, manager: FFPluginManager, tmp_path: Path
) -> None:
    config = TrainConfig(**SETTINGS, epochs=8, early_stop=3)
    reference = build_run(config)
    expected = train(reference)
    assert reference.epoch == 5 and expected["kept_epoch"] == 2
    kept = weights(reference.model)
    path = tmp_path / "run.pt"

    class StopInEpoch4:
        @ffcore.hookimpl
        def fflib_batch_end(self, run: TrainingRun) -> None:
            if run.epoch == 3 and run.batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    manager.register(StopInEpoch4(), name="stop")
    run = build_run(config)
    with pytest.raises(TrainingInterrupted):
        train(run, checkpoint=lambda current: save_run(current, path))
    manager.unregister(name="stop")
    payload = read_checkpoint(path)
    assert payload["state"]["selection"]["since_best"] == 1  # epoch 3 did not improve
    assert "resume_weights" in payload["state"]  # the best weights are not the current ones
    assert same(weights(load_checkpoint(path).model), kept)  # eval reads the kept model

    resumed = resume_run(path)
    metrics = train(resumed)
    assert resumed.epoch == 5 and metrics["stopped_early"] == 1.0  # the patience carried over
    assert metrics["kept_epoch"] == 2
    assert same(weights(resumed.model), kept)
    assert metrics["test_acc"] == expected["test_acc"]


def test_resuming_a_finished_run_trains_on_from_its_last_weights(
    scripted: Scripted, tmp_path: Path
) -> None:
    run = build_run(TrainConfig(**SETTINGS, epochs=3))
    train(run)
    last = scripted.epoch_weights[3]
    path = save_run(run, tmp_path / "done.pt")
    longer = resume_run(path, {"epochs": 4})
    assert same(weights(longer.model), last)
    metrics = train(longer)
    assert metrics["kept_epoch"] == 2  # epoch 4 (0.4) did not beat epoch 2 (0.9)
    assert same(weights(longer.model), scripted.epoch_weights[2])


def test_json_summary_says_which_epoch_was_kept(tmp_path: Path) -> None:
    result = invoke(
        *PLAIN, "--epochs", "3", "--early-stop", "5", "-o", str(tmp_path / "x.pt"), "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    history = [epoch["val_acc"] for epoch in summary["epochs"]]
    best = max(history)
    assert summary["keep"] == "best" and summary["stopped_early"] is False
    assert summary["kept_epoch"] == max(i + 1 for i, v in enumerate(history) if v == best)
    assert summary["val_acc"] == best
    text = invoke(*PLAIN, "--epochs", "2", "--keep", "last", "-o", str(tmp_path / "y.pt"))
    assert "kept epoch 2 of 2 (the last)" in text.output
