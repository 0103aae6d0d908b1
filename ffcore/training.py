"""The training loop: builds a run from a :class:`TrainConfig` and trains it.

The loop keeps whole data sets as tensors on the device, batches by index, and makes no
host-device sync inside an epoch (the loss is summed on the device). Plugin lifecycle
hooks fire at train start, batch end, epoch end and train end; the per-layer hooks are
wired in only when some plugin implements them, so idle hooks cost nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ffcore.components import normalize_name
from ffcore.config import TrainConfig
from ffcore.data import iterate_batches, num_batches
from ffcore.errors import FFLibError, InvalidValueError
from ffcore.interfaces import (
    DataSplits,
    FFLayer,
    FFModel,
    LayerStepResult,
    NegativeSampler,
    Probe,
    Split,
)
from ffcore.plugin_manager import FFPluginManager, get_plugin_manager
from ffcore.registry import create_model, create_negatives, create_probe, load_dataset

#: Samples per forward pass when evaluating (TryAll multiplies this by the label count).
EVAL_BATCH_SIZE = 1000


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; others must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValueError(
            "device", name, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError("device", name, "an available device (CUDA is not available)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidValueError("device", name, "an available device (MPS is not available)")
    return device


@torch.no_grad()
def evaluate(
    model: nn.Module, probe: Probe, split: Split, batch_size: int = EVAL_BATCH_SIZE
) -> float:
    """Accuracy of ``probe``'s predictions on ``split`` (a fraction in [0, 1])."""
    if len(split) == 0:
        raise FFLibError("cannot evaluate on an empty split")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.y.device)
    for x, y in iterate_batches(split, batch_size, shuffle=False):
        correct += (probe.predict(model, x) == y).sum()
    model.train(was_training)
    return float(correct.item()) / len(split)


@dataclass
class TrainingRun:
    """A model with its data, components and progress: what lifecycle hooks receive."""

    config: TrainConfig
    model: FFModel
    data: DataSplits
    negatives: NegativeSampler
    probe: Probe
    device: torch.device
    plugins: FFPluginManager
    #: Epochs completed so far and batches trained so far.
    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    #: Names the run was built from (model, dataset, probe, negatives), canonical form.
    names: dict[str, str] = field(default_factory=dict)


LR_SCHEDULES = ("constant", "linear-cooldown", "cosine")


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning-rate multiplier for 0-based ``epoch`` of ``epochs``.

    ``linear-cooldown`` keeps the rate for the first half, then decays it linearly towards
    zero (Hinton's schedule); ``cosine`` follows half a cosine from 1 to near 0.
    """
    if schedule == "constant" or epochs <= 1:
        return 1.0
    if schedule == "linear-cooldown":
        half = epochs // 2
        if epoch < half:
            return 1.0
        return (epochs - epoch) / (epochs - half + 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise InvalidValueError("lr_schedule", schedule, f"one of {', '.join(LR_SCHEDULES)}")


def _apply_lr_schedule(model: FFModel, base_lrs: list[list[float]], factor: float) -> None:
    for optimizer, bases in zip(model.optimizers(), base_lrs, strict=True):
        for group, base in zip(optimizer.param_groups, bases, strict=True):
            group["lr"] = base * factor


class Progress(Protocol):
    """What the trainer reports to a progress display (the CLI draws a bar)."""

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts, with ``batches`` batches."""

    def advance(self) -> None:
        """One batch was trained."""

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Epoch ``epoch`` ended with ``metrics``."""


def dataset_kwargs(config: TrainConfig, plugins: FFPluginManager) -> dict[str, Any]:
    """Options for the dataset factory from the config's dataset settings."""
    spec = plugins.registry("dataset").get(config.dataset)
    kwargs: dict[str, Any] = {"val_split": config.val_split, "use": config.use, "seed": config.seed}
    if config.data_root is not None:
        if not spec.accepts("root"):
            raise InvalidValueError(
                "data_root", config.data_root, f"no data root: dataset {spec.name!r} needs no files"
            )
        kwargs["root"] = config.data_root
    if spec.accepts("download"):
        kwargs["download"] = config.download
    kwargs.update(config.dataset_options)
    return {k: v for k, v in kwargs.items() if spec.accepts(k) or k in config.dataset_options}


def build_run(config: TrainConfig, plugins: FFPluginManager | None = None) -> TrainingRun:
    """Load the data and build the model, probe and negative sampler ``config`` names."""
    plugins = plugins or get_plugin_manager()
    device = resolve_device(config.device)
    model_spec = plugins.registry("model").get(config.model)
    negatives_spec = plugins.registry("negatives").get(config.negatives)
    data = load_dataset(config.dataset, **dataset_kwargs(config, plugins))
    torch.manual_seed(config.seed)
    model = create_model(
        config.model,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        **config.model_kwargs(),
    )
    model.to(device)
    probe_name = config.probe or model.default_probe
    probe = create_probe(probe_name)
    probe.check(model)
    negatives = create_negatives(config.negatives, **config.negatives_options)
    data = DataSplits(
        name=data.name,
        train=data.train.to(device),
        val=data.val.to(device) if data.val is not None else None,
        test=data.test.to(device),
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        class_names=data.class_names,
    )
    return TrainingRun(
        config=config,
        model=model,
        data=data,
        negatives=negatives,
        probe=probe,
        device=device,
        plugins=plugins,
        names={
            "model": model_spec.name,
            "dataset": normalize_name(data.name),
            "probe": plugins.registry("probe").get(probe_name).name,
            "negatives": negatives_spec.name,
        },
    )


class _HookObserver:
    """Forwards each layer's training step to the per-layer plugin hooks."""

    def __init__(self, run: TrainingRun, activations: bool, goodness: bool) -> None:
        self.run = run
        self.activations = activations
        self.goodness = goodness

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        hook = self.run.plugins.hook
        if self.activations:
            hook.fflib_layer_activations(
                run=self.run, layer_index=index, layer=layer, h_pos=result.h_pos, h_neg=result.h_neg
            )
        if self.goodness:
            hook.fflib_layer_goodness(
                run=self.run,
                layer_index=index,
                layer=layer,
                g_pos=result.g_pos,
                g_neg=result.g_neg,
                loss=result.loss,
            )


def train(run: TrainingRun, progress: Progress | None = None) -> dict[str, float]:
    """Train ``run`` for its remaining epochs; return the final metrics.

    Metrics: ``loss`` (last epoch's mean), ``val_acc`` (when there is a validation
    split), ``test_acc``, ``train_seconds`` and ``epochs``.
    """
    config, model, plugins = run.config, run.model, run.plugins
    hook = plugins.hook
    wants_activations = plugins.has_implementations("fflib_layer_activations")
    wants_goodness = plugins.has_implementations("fflib_layer_goodness")
    wants_batches = plugins.has_implementations("fflib_batch_end")
    model.observer = (
        _HookObserver(run, wants_activations, wants_goodness)
        if wants_activations or wants_goodness
        else None
    )
    hook.fflib_train_start(run=run)
    generator = torch.Generator().manual_seed(config.seed + run.epoch)
    batches = num_batches(len(run.data.train), config.batch_size)
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    model.train()
    base_lrs = [[float(g["lr"]) for g in opt.param_groups] for opt in model.optimizers()]
    while run.epoch < config.epochs:
        epoch = run.epoch
        _apply_lr_schedule(model, base_lrs, lr_factor(config.lr_schedule, epoch, config.epochs))
        model.on_epoch_start(epoch, config.epochs)
        if progress is not None:
            progress.epoch_start(epoch + 1, config.epochs, batches)
        epoch_started = time.perf_counter()
        loss_sum: Tensor = torch.zeros((), device=run.device)
        for batch, (x, y) in enumerate(
            iterate_batches(run.data.train, config.batch_size, shuffle=True, generator=generator)
        ):
            loss = model.train_batch(x, y, run.negatives)
            loss_sum = loss_sum + loss
            run.step += 1
            if wants_batches:
                hook.fflib_batch_end(run=run, epoch=epoch, batch=batch, loss=loss)
            if progress is not None:
                progress.advance()
        metrics = {"epoch": float(epoch + 1), "loss": float(loss_sum.item()) / batches}
        if run.data.val is not None and len(run.data.val):
            metrics["val_acc"] = evaluate(model, run.probe, run.data.val)
        metrics["epoch_seconds"] = time.perf_counter() - epoch_started
        run.epoch += 1
        run.history.append(metrics)
        hook.fflib_epoch_end(run=run, epoch=epoch, metrics=metrics)
        if progress is not None:
            progress.epoch_end(epoch + 1, metrics)
    _apply_lr_schedule(model, base_lrs, 1.0)
    train_seconds = time.perf_counter() - started
    final: dict[str, float] = {"epochs": float(run.epoch), "train_seconds": train_seconds}
    if "loss" in metrics:
        final["loss"] = metrics["loss"]
    if "val_acc" in metrics:
        final["val_acc"] = metrics["val_acc"]
    final["test_acc"] = evaluate(model, run.probe, run.data.test)
    model.observer = None
    hook.fflib_train_end(run=run, metrics=final)
    return final
