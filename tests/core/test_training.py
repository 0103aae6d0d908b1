"""The training loop: learning, hooks, schedules, devices."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.config import TrainConfig
from ffcore.devices import denormals_flushed, resolve_device
from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch
from ffcore.plugin_manager import FFPluginManager
from ffcore.schedules import lr_factor
from ffcore.training import build_run, evaluate, train
from tests.core.scripts import run_in_a_fresh_process


def test_tiny_run_learns_digits_well_above_chance() -> None:
    config = TrainConfig(layers=[256], epochs=8, lr=0.01, device="cpu", lr_schedule="constant")
    run = build_run(config)
    metrics = train(run)
    assert metrics["test_acc"] > 0.6  # chance is 0.1
    assert metrics["epochs"] == 8 and len(run.history) == 8
    assert run.step == 8 * -(-len(run.data.train) // 128)
    assert evaluate(run.model, run.probe, run.data.test) == pytest.approx(metrics["test_acc"])


def test_xor_needs_and_gets_a_hidden_layer() -> None:
    config = TrainConfig(dataset="xor", layers=[32, 32], epochs=15, lr=0.01, device="cpu")
    metrics = train(build_run(config))
    assert metrics["test_acc"] > 0.9


def test_lifecycle_hooks_fire_in_order(manager: FFPluginManager) -> None:
    events: list[tuple[Any, ...]] = []

    class Recorder:
        @ffcore.hookimpl
        def fflib_train_start(self) -> None:
            events.append(("start",))

        @ffcore.hookimpl
        def fflib_batch_end(self, epoch: int, batch: int, loss: Tensor) -> None:
            assert loss.dim() == 0
            events.append(("batch", epoch, batch))

        @ffcore.hookimpl
        def fflib_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
            events.append(("epoch", epoch, sorted(metrics)))

        @ffcore.hookimpl
        def fflib_layer_goodness(self, layer_index: int, g_pos: Tensor, g_neg: Tensor) -> None:
            assert g_pos.shape == g_neg.shape == (g_pos.shape[0],)
            events.append(("goodness", layer_index))

        @ffcore.hookimpl
        def fflib_layer_activations(self, layer_index: int, h_pos: Tensor) -> None:
            events.append(("activations", layer_index, h_pos.shape[1]))

        @ffcore.hookimpl
        def fflib_train_end(self, metrics: dict[str, float]) -> None:
            events.append(("end", "test_acc" in metrics))

    manager.register(Recorder(), name="recorder")
    config = TrainConfig(layers=[8, 4], epochs=2, batch_size=500, device="cpu", use=0.5)
    run = build_run(config)
    train(run)
    batches = -(-len(run.data.train) // 500)
    assert batches == 2
    assert events[0] == ("start",)
    assert events[-1] == ("end", True)
    per_batch = [("activations", 0, 8), ("goodness", 0), ("activations", 1, 4), ("goodness", 1)]
    assert events[1:5] == per_batch
    assert events.count(("goodness", 1)) == 2 * batches
    epoch_events = [e for e in events if e[0] == "epoch"]
    assert epoch_events == [
        ("epoch", 0, ["epoch", "epoch_seconds", "loss", "val_acc"]),
        ("epoch", 1, ["epoch", "epoch_seconds", "loss", "val_acc"]),
    ]


def test_no_layer_observer_without_hook_implementations() -> None:
    run = build_run(TrainConfig(layers=[8], epochs=1, device="cpu"))
    seen: list[object] = []

    original = run.model.train_batch

    def spy(batch: Batch, negatives: Any) -> Tensor:
        seen.append(run.model.observer)
        return original(batch, negatives)

    run.model.train_batch = spy  # type: ignore[method-assign]
    train(run)
    assert seen and all(observer is None for observer in seen)


def test_same_seed_same_result() -> None:
    first = train(build_run(TrainConfig(layers=[16], epochs=2, device="cpu", seed=3)))
    second = train(build_run(TrainConfig(layers=[16], epochs=2, device="cpu", seed=3)))
    assert first["test_acc"] == second["test_acc"] and first["loss"] == second["loss"]


def test_lr_schedules() -> None:
    assert [lr_factor("constant", e, 4) for e in range(4)] == [1.0] * 4
    cooldown = [lr_factor("linear-cooldown", e, 10) for e in range(10)]
    assert cooldown[:5] == [1.0] * 5
    assert all(a > b > 0 for a, b in itertools.pairwise(cooldown[4:]))
    cosine = [lr_factor("cosine", e, 10) for e in range(10)]
    assert cosine[0] == 1.0 and all(a > b for a, b in itertools.pairwise(cosine))
    with pytest.raises(InvalidValueError, match="lr_schedule"):
        lr_factor("step", 0, 10)


def test_schedule_is_applied_and_base_lr_restored() -> None:
    run = build_run(TrainConfig(layers=[8], epochs=4, lr=0.02, device="cpu"))
    seen: list[float] = []

    class Spy:
        @ffcore.hookimpl
        def fflib_epoch_end(self) -> None:
            seen.append(run.model.optimizers()[0].param_groups[0]["lr"])

    ffcore.get_plugin_manager().register(Spy(), name="spy")
    train(run)
    assert seen[0] == pytest.approx(0.02) and seen[1] == pytest.approx(0.02)
    assert seen[2] < 0.02 and seen[3] < seen[2]
    assert run.model.optimizers()[0].param_groups[0]["lr"] == pytest.approx(0.02)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_probe_that_cannot_read_the_model_fails_early() -> None:
    class NoScores(ffcore.interfaces.FFModel):
        num_classes = 10

        def train_batch(self, batch: Batch, negatives: Any) -> Tensor:
            return torch.zeros(())

    probe = ffcore.create_probe("tryall")
    with pytest.raises(ffcore.FFLibError, match="goodness_per_label"):
        probe.check(NoScores())


_FLUSH = (
    "from ffcore.devices import denormals_flushed, flush_denormals\n"
    "before = denormals_flushed()\n"
    "print(before, flush_denormals(), denormals_flushed())\n"
)


def test_flush_denormals_sets_the_mode() -> None:
    assert run_in_a_fresh_process(_FLUSH, {"FFLIB_KEEP_DENORMALS": "0"}) == "False True True"


def test_keep_denormals_environment_variable_opts_out() -> None:
    assert run_in_a_fresh_process(_FLUSH, {"FFLIB_KEEP_DENORMALS": "1"}) == "False False False"


class _FlushSpy:
    def __init__(self) -> None:
        self.seen: list[bool] = []

    @ffcore.hookimpl
    def fflib_epoch_end(self, run: object, epoch: int, metrics: dict[str, float]) -> None:
        self.seen.append(denormals_flushed())


def test_train_flushes_denormals_while_it_trains_and_restores_the_mode() -> None:
    assert not denormals_flushed()
    spy = _FlushSpy()
    ffcore.get_plugin_manager().register(spy, name="flush-spy")
    run = build_run(TrainConfig(layers=[8], epochs=2, device="cpu"))
    train(run)
    assert spy.seen == [True, True]
    assert not denormals_flushed()  # the caller's mode is back
