"""The training loop: builds a run from a :class:`TrainConfig` and trains it.

The loop keeps whole data sets as tensors on the device and batches by index. Each
epoch's data order depends only on the seed and the epoch number, so a run resumed from a
checkpoint (even one taken mid-epoch) continues exactly as the uninterrupted run would.
Plugin lifecycle hooks fire at train start, batch end, epoch end and train end; the
per-layer hooks are wired in only when some plugin implements them, so idle hooks cost
nothing. SIGINT/SIGTERM stop training after the current batch, with a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ffcore.allocator import reuse_freed_memory
from ffcore.averaging import WeightAverage
from ffcore.components import normalize_name
from ffcore.config import TrainConfig
from ffcore.data import epoch_generator, iterate_batches, num_batches
from ffcore.devices import flushing_denormals, resolve_device
from ffcore.errors import DivergenceError, FFLibError, InvalidValueError, TrainingInterrupted
from ffcore.eval_mode import eval_mode
from ffcore.explosion import GrowthGuard, loss_reference
from ffcore.interfaces import (
    Batch,
    DataSplits,
    FFLayer,
    FFModel,
    LayerStepResult,
    NegativeSampler,
    Probe,
    Split,
)
from ffcore.plugin_manager import get_plugin_manager
from ffcore.precision import autocast
from ffcore.progress import AUTO, Progress, console_progress
from ffcore.recipes import ResolvedConfig, resolve_config
from ffcore.registry import build
from ffcore.run_data import dataset_kwargs
from ffcore.schedules import current_lrs, scale_lrs, schedule_factors
from ffcore.selection import EpochSelection
from ffcore.signals import StopRequests
from ffcore.sizing import allocating, check_run_memory

if TYPE_CHECKING:
    from ffcore.distributed.strategy import ParallelTraining

#: Samples per forward pass when evaluating (TryAll multiplies this by the label count).
EVAL_BATCH_SIZE = 1000


@torch.no_grad()
def evaluate(
    model: nn.Module,
    probe: Probe,
    split: Split,
    batch_size: int = EVAL_BATCH_SIZE,
    *,
    precision: str = "fp32",
) -> float:
    """Accuracy of ``probe``'s predictions on ``split`` (a fraction in [0, 1]).

    ``precision`` is ``fp32`` or ``bf16`` (mixed precision, see :mod:`ffcore.precision`).
    """
    if len(split) == 0:
        raise FFLibError("cannot evaluate on an empty split")
    correct = torch.zeros((), dtype=torch.long, device=split.y.device)
    with eval_mode(model), autocast(split.x.device, precision):
        for x, y in iterate_batches(split, batch_size, shuffle=False):
            correct += (probe.predict(model, x) == y).sum()
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
    #: Epochs completed, batches completed in the current epoch, batches trained in all.
    epoch: int = 0
    batch: int = 0
    step: int = 0
    #: Loss summed over the current epoch's batches so far; batches skipped as non-finite.
    loss_sum: float = 0.0
    skipped: int = 0
    #: Learning rates before the schedule scaled them (set when training starts).
    base_lrs: list[list[float]] | None = None
    #: The first batch's loss: what a loss that explodes is measured against.
    loss_reference: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    #: Names the run was built from (model, dataset, probe, negatives), canonical form.
    names: dict[str, str] = field(default_factory=dict)
    #: Which epoch's weights the run keeps and when it stops early (``keep``, ``early_stop``).
    selection: EpochSelection = field(default_factory=EpochSelection)
    #: Which preset the settings started from, why, and where each setting came from.
    resolved: ResolvedConfig | None = None
    #: How this process shares the run with others (``None``: it trains alone); see
    #: :mod:`ffcore.distributed`.
    parallel: ParallelTraining | None = None
    #: The moving average of the weights that the run evaluates and keeps (``ema_decay``;
    #: ``None``: off). See :mod:`ffcore.averaging`.
    average: WeightAverage | None = None


def build_run(config: TrainConfig) -> TrainingRun:
    """Load the data and build the model, probe and negative sampler ``config`` names.

    The config is first resolved (:func:`~ffcore.recipes.resolve_config`): the preset it
    names, else its data set's recipe, lies under the settings it was given, as for
    ``ff train``. ``run.config`` is the resolved config; ``run.resolved`` says which preset
    applied and why.
    """
    resolved = resolve_config(config)
    config = resolved.config
    plugins = get_plugin_manager()
    device = resolve_device(config.device)
    autocast(device, config.precision)  # fails now if the device cannot run that precision
    model_spec = plugins.registry("model").get(config.model)
    negatives_spec = plugins.registry("negatives").get(config.negatives)
    data = build("dataset", config.dataset, DataSplits, **dataset_kwargs(config))

    def make_model() -> FFModel:
        return build(
            "model",
            config.model,
            FFModel,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            **config.model_kwargs(),
        )

    check_run_memory(make_model, data, config.batch_size, EVAL_BATCH_SIZE, device)
    torch.manual_seed(config.seed)
    with allocating("the model"):
        model = make_model()
        model.to(device)
    probe_name = config.probe or model.default_probe
    probe = build("probe", probe_name, Probe)
    probe.check(model)
    if config.batch_size > len(data.train):
        raise InvalidValueError(
            "batch_size",
            config.batch_size,
            f"at most the {len(data.train)} training samples of {data.name!r}",
        )
    negatives = build("negatives", config.negatives, NegativeSampler, **config.negatives_options)
    with allocating("the data"):
        data = DataSplits(
            name=data.name,
            train=data.train.to(device),
            val=data.val.to(device) if data.val is not None else None,
            test=data.test.to(device),
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            class_names=data.class_names,
            preprocessing=data.preprocessing,
        )
    return TrainingRun(
        config=config,
        model=model,
        data=data,
        negatives=negatives,
        probe=probe,
        device=device,
        resolved=resolved,
        names={
            "model": model_spec.name,
            "dataset": normalize_name(data.name),
            "probe": plugins.registry("probe").get(probe_name).name,
            "negatives": negatives_spec.name,
        },
        selection=EpochSelection.for_run(
            config.keep,
            config.early_stop,
            has_validation=data.val is not None and len(data.val) > 0,
        ),
        average=(
            WeightAverage(model, model.optimizers(), config.ema_decay) if config.ema_decay else None
        ),
    )


class _HookObserver:
    """Forwards each layer's training step to the per-layer plugin hooks."""

    def __init__(self, run: TrainingRun, hook: Any, activations: bool, goodness: bool) -> None:
        self.run = run
        self.hook = hook
        self.activations = activations
        self.goodness = goodness

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        hook = self.hook
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


def _health_check(run: TrainingRun, names: dict[int, str]) -> None:
    """End-of-epoch checks: no NaN/inf weights, no layer whose units all went silent."""
    for name, parameter in run.model.named_parameters():
        if not bool(torch.isfinite(parameter).all()):
            raise DivergenceError(
                f"training diverged in epoch {run.epoch + 1}: parameter {name!r} holds NaN or "
                "infinite values; lower the learning rate"
            )
    for module in run.model.modules():
        if isinstance(module, FFLayer) and module.alive is not None and not bool(module.alive):
            raise DivergenceError(
                f"training diverged in epoch {run.epoch + 1}: every unit of layer "
                f"{names.get(id(module), type(module).__name__)!r} is silent (no activation on "
                f"the last batch), so it can no longer learn; lower the learning rate "
                f"(it is {module.lr:g})",
                layer=module,
            )


def _epoch_checks(
    run: TrainingRun,
    names: dict[int, str],
    guard: GrowthGuard | None,
    loss: float,
    lr_note: str,
) -> None:
    """The end-of-epoch checks: the health check, then (when on) loss and weight growth."""
    _health_check(run, names)
    if guard is not None:
        guard.check(run.model, run.epoch, loss, run.loss_reference, lr_note)


def _divergence_message(run: TrainingRun, exc: DivergenceError, names: dict[int, str]) -> str:
    where = f"in epoch {run.epoch + 1}, batch {run.batch + 1}"
    layer = f" (layer {names[id(exc.layer)]!r})" if id(exc.layer) in names else ""
    return (
        f"training diverged {where}: {exc}{layer}; lower the learning rate, check the data, "
        "or pass --on-nonfinite skip to skip such batches"
    )


def kept_metrics(run: TrainingRun) -> dict[str, float]:
    """``kept_epoch`` (1-based), its ``val_acc``, and ``stopped_early`` (0 or 1)."""
    kept = run.selection.kept_epoch(run.epoch)
    found: dict[str, float] = {
        "kept_epoch": float(kept),
        "stopped_early": float(run.selection.stopped and run.epoch < run.config.epochs),
    }
    if 0 < kept <= len(run.history) and "val_acc" in run.history[kept - 1]:
        found["val_acc"] = run.history[kept - 1]["val_acc"]
    return found


#: Saves a run and returns where (``ff train`` writes its ``--out`` file).
Checkpointer = Callable[[TrainingRun], Path]


def train(
    run: TrainingRun,
    progress: Progress | str | None = AUTO,
    *,
    checkpoint: Checkpointer | None = None,
    stop: StopRequests | None = None,
) -> dict[str, float]:
    """Train ``run`` for its remaining epochs; return the final metrics.

    ``progress`` shows how it goes: by default (``"auto"``) what ``ff train`` shows (a bar
    on a terminal, a heartbeat line every 10 s elsewhere, a line per epoch; see
    :mod:`ffcore.progress`); ``None`` shows nothing; or any :class:`~ffcore.progress.Progress`.

    Metrics: ``loss`` (last epoch's mean), ``val_acc`` (the kept epoch's, when there is a
    validation split), ``test_acc`` (of the kept epoch's weights, which the model holds
    afterwards), ``kept_epoch``, ``stopped_early``, ``train_seconds``, ``epochs`` and
    ``skipped_batches``. ``checkpoint`` is called every ``config.save_every`` epochs, when
    a SIGINT/SIGTERM stops the run (then :class:`~ffcore.errors.TrainingInterrupted` is
    raised), and once training ends, before the test split is evaluated: a signal during
    the test then stops at once (:class:`~ffcore.signals.StopNow`) and the trained run is
    already on disk. ``stop`` is the caller's :class:`~ffcore.signals.StopRequests` when it
    holds the signal handler beyond training (``ff train`` does, until its last save).
    With ``config.ema_decay`` the model holds its weights' moving averages after each
    epoch and at the end, and those are what is validated, kept, tested and saved (see
    :mod:`ffcore.averaging`).

    Denormal floats are flushed to zero in the calling thread while it trains, and the
    previous mode is restored after (see :func:`~ffcore.devices.flush_denormals` for
    torch's worker threads too). The process's ``malloc`` keeps freed memory for the next
    step (:func:`~ffcore.allocator.reuse_freed_memory`; it holds its peak memory after).
    """
    reuse_freed_memory()
    if stop is None:
        stop = StopRequests() if run.parallel is None else run.parallel.stop_requests()
    with flushing_denormals():
        if run.parallel is not None and run.parallel.rank != 0:
            progress = None  # of several processes, rank 0 shows the progress
        return _train(run, console_progress(progress), checkpoint, stop)


def _train(
    run: TrainingRun,
    progress: Progress | None,
    checkpoint: Checkpointer | None,
    stop: StopRequests,
) -> dict[str, float]:
    config, model, plugins = run.config, run.model, get_plugin_manager()
    hook = plugins.hook
    parallel = run.parallel
    # First: a plugin may register its per-batch observers here, only for the runs that
    # need them, so that idle plugins cost the hot loop nothing.
    hook.fflib_train_start(run=run)
    wants_activations = plugins.has_implementations("fflib_layer_activations")
    wants_goodness = plugins.has_implementations("fflib_layer_goodness")
    wants_batches = plugins.has_implementations("fflib_batch_end")
    model.observer = (
        _HookObserver(run, hook, wants_activations, wants_goodness)
        if wants_activations or wants_goodness
        else None
    )
    check_finite = config.on_nonfinite != "off"
    # Per-layer checks stop a NaN before it reaches the weights, at one sync per layer
    # step: free on the CPU and needed to skip batches; elsewhere one check per batch.
    per_layer = check_finite and (run.device.type == "cpu" or config.on_nonfinite == "skip")
    for module in model.modules():
        if isinstance(module, FFLayer):
            module.check_finite = per_layer
    names = {id(module): name for name, module in model.named_modules() if name}
    if parallel is not None:
        parallel.start(run)
    train_batch = model.train_batch if parallel is None else parallel.train_batch
    score = evaluate if parallel is None else parallel.evaluate
    optimizers = model.optimizers()
    if run.base_lrs is None:
        run.base_lrs = current_lrs(optimizers)
    batches = num_batches(len(run.data.train), config.batch_size)
    precision = autocast(run.device, config.precision)
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    run.selection.restart(model)  # a finished run trained on: from its last weights
    average = run.average
    model.train()
    guard = GrowthGuard(model) if check_finite else None
    lr_note = f" (it is {config.lr:g})" if config.lr is not None else ""
    if progress is not None:
        progress.train_start(run)
    with stop:
        while run.epoch < config.epochs and not run.selection.stopped:
            epoch = run.epoch
            positions = model.schedule_positions(epoch, config.epochs)
            factors = schedule_factors(config.lr_schedule, positions)
            scales = model.lr_scales(epoch, config.epochs)
            scale_lrs(
                optimizers, run.base_lrs, [f * s for f, s in zip(factors, scales, strict=True)]
            )
            model.on_epoch_start(epoch, config.epochs)
            if average is not None:
                average.epoch_start()  # the raw weights back, for training to go on from
            if progress is not None:
                progress.epoch_start(epoch + 1, config.epochs, batches)
            epoch_started = time.perf_counter()
            loss_sum = torch.tensor(run.loss_sum, device=run.device)
            order = epoch_generator(config.seed, epoch)
            for x, y in iterate_batches(
                run.data.train, config.batch_size, shuffle=True, generator=order, start=run.batch
            ):
                try:
                    with precision:
                        loss = train_batch(Batch(x, y), run.negatives)
                    if check_finite and not bool(torch.isfinite(loss)):
                        raise DivergenceError(f"non-finite loss {float(loss)}")
                except DivergenceError as exc:
                    if config.on_nonfinite != "skip":
                        raise DivergenceError(_divergence_message(run, exc, names)) from None
                    run.skipped += 1
                else:
                    loss_sum = loss_sum + loss
                    if run.loss_reference is None and guard is not None:
                        run.loss_reference = loss_reference(loss)  # once per run
                    if wants_batches:
                        hook.fflib_batch_end(run=run, epoch=epoch, batch=run.batch, loss=loss)
                run.batch += 1
                run.step += 1
                if progress is not None:
                    progress.advance(loss_sum)
                signum = (
                    stop.signum if parallel is None else parallel.agreed_stop(run.step, stop.signum)
                )
                if signum is not None:
                    run.loss_sum = float(
                        loss_sum if parallel is None else parallel.total_loss(loss_sum)
                    )
                    saved = checkpoint(run) if checkpoint is not None else None
                    stop.saved(saved)
                    if parallel is not None:
                        parallel.finish()
                    raise TrainingInterrupted(
                        signum, str(saved) if saved else None, epoch, run.batch
                    )
            # the loss is this process's share in a parallel run, as its reference is
            checks = partial(_epoch_checks, run, names, guard, float(loss_sum) / batches, lr_note)
            if parallel is None:
                checks()
            else:  # every rank raises alike, or none does
                parallel.agree(checks)
                loss_sum = parallel.total_loss(loss_sum)
            if average is not None:
                average.epoch_end()  # from here on the model holds the averages
            metrics = {"epoch": float(epoch + 1), "loss": float(loss_sum) / batches}
            if run.data.val is not None and len(run.data.val):
                metrics["val_acc"] = score(
                    model, run.probe, run.data.val, precision=config.precision
                )
            metrics["epoch_seconds"] = time.perf_counter() - epoch_started
            run.epoch += 1
            run.batch = 0
            run.loss_sum = 0.0
            run.history.append(metrics)
            run.selection.epoch_end(run.epoch, metrics, model)
            hook.fflib_epoch_end(run=run, epoch=epoch, metrics=metrics)
            if progress is not None:
                progress.epoch_end(epoch + 1, metrics)
            save_due = config.save_every and run.epoch % config.save_every == 0
            if checkpoint is not None and save_due and run.epoch < config.epochs:
                stop.saved(checkpoint(run))
        scale_lrs(optimizers, run.base_lrs, 1.0)
        run.selection.finish(model, run.epoch)  # the kept epoch's weights: tested and saved
        final: dict[str, float] = {
            "epochs": float(run.epoch),
            "train_seconds": time.perf_counter() - started,
            "skipped_batches": float(run.skipped),
        }
        for key in ("loss", "val_acc"):
            if key in metrics:
                final[key] = metrics[key]
        final.update(kept_metrics(run))
        if checkpoint is not None:  # first the trained run goes to disk, then the test
            stop.saved(checkpoint(run))
        with stop.interrupting():  # nothing is lost by stopping at once now
            final["test_acc"] = score(model, run.probe, run.data.test, precision=config.precision)
        if parallel is not None:
            parallel.finish()
    model.observer = None
    hook.fflib_train_end(run=run, metrics=final)
    if progress is not None:
        progress.train_end(final)
    return final
