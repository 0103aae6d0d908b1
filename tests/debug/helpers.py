"""Shared helpers of the ffdebug tests: tiny runs, an observer plugin, reading event files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
    EventAccumulator,
)
from torch import Tensor

from ffcore import hookimpl
from ffcore.config import TrainConfig
from ffcore.interfaces import FFLayer
from ffcore.plugin_manager import FFPluginManager, get_plugin_manager
from ffcore.training import TrainingRun, build_run, train


@dataclass
class LayerStep:
    """One layer step as the per-layer hooks saw it (cloned)."""

    step: int
    layer: int
    h_pos: Tensor
    h_neg: Tensor
    g_pos: Tensor
    g_neg: Tensor
    loss: float
    lr: float
    maximise: bool


@dataclass
class Recorder:
    """A plugin object that keeps what the hooks saw on the batches ``step % every == 0``."""

    every: int
    steps: list[LayerStep] = field(default_factory=list)
    batch_losses: dict[int, float] = field(default_factory=dict)
    _activations: dict[tuple[int, int], tuple[FFLayer, Tensor, Tensor]] = field(
        default_factory=dict
    )

    @hookimpl
    def fflib_layer_activations(
        self, run: TrainingRun, layer_index: int, layer: FFLayer, h_pos: Tensor, h_neg: Tensor
    ) -> None:
        if run.step % self.every == 0:
            self._activations[(run.step, layer_index)] = (layer, h_pos.clone(), h_neg.clone())

    @hookimpl
    def fflib_layer_goodness(
        self, run: TrainingRun, layer_index: int, g_pos: Tensor, g_neg: Tensor, loss: Tensor
    ) -> None:
        if run.step % self.every:
            return
        layer, h_pos, h_neg = self._activations[(run.step, layer_index)]
        self.steps.append(
            LayerStep(
                run.step,
                layer_index,
                h_pos,
                h_neg,
                g_pos.clone(),
                g_neg.clone(),
                float(loss),
                layer.lr,
                layer.maximise,
            )
        )

    @hookimpl
    def fflib_batch_end(self, run: TrainingRun, epoch: int, batch: int, loss: Tensor) -> None:
        if run.step % self.every == 0:
            self.batch_losses[run.step] = float(loss)

    def last_frames(self, layer: int) -> dict[int, LayerStep]:
        """Per traced step, the layer's last step (the last frame of a recurrent model)."""
        found: dict[int, LayerStep] = {}
        for item in self.steps:
            if item.layer == layer:
                found[item.step] = item
        return found


def manager() -> FFPluginManager:
    """The process-wide plugin manager (fresh for each test): every installed plugin."""
    return get_plugin_manager()


def tiny_config(logdir: Path | None, **settings: Any) -> TrainConfig:
    """A run of a few tenths of a second on the embedded digits."""
    values: dict[str, Any] = {
        "preset": "plain",  # FFNet, whatever the data set's recipe
        "layers": [32, 24],
        "epochs": 2,
        "device": "cpu",
        "lr": 0.02,
        "tensorboard": str(logdir) if logdir is not None else None,
    }
    values.update(settings)
    return TrainConfig.from_dict(values)


def train_tiny(config: TrainConfig, *observers: object) -> tuple[TrainingRun, dict[str, float]]:
    """Build and train ``config`` with ``observers`` registered as extra plugins."""
    for index, observer in enumerate(observers):
        manager().register(observer, name=f"test-observer-{index}")
    run = build_run(config)
    return run, train(run)


def events(logdir: Path) -> Any:
    """Every event under ``logdir`` (one run), nothing sampled away."""
    guidance = {"scalars": 0, "histograms": 0, "tensors": 0, "images": 0}
    accumulator = EventAccumulator(str(logdir), size_guidance=guidance)
    accumulator.Reload()
    return accumulator


def scalars(accumulator: Any, tag: str) -> dict[int, float]:
    """A scalar tag's values by step."""
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def text(accumulator: Any, tag: str) -> str:
    """The (first) Markdown text written under ``tag``."""
    proto = accumulator.Tensors(f"{tag}/text_summary")[0].tensor_proto
    value: bytes = proto.string_val[0]
    return value.decode()


def close(a: float, b: float, tolerance: float = 1e-5) -> bool:
    """Equal up to float32 rounding (relative and absolute)."""
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def per_layer_means(step: LayerStep) -> tuple[float, float]:
    """Mean positive and negative raw goodness of a recorded step."""
    return float(step.g_pos.mean()), float(step.g_neg.mean())
