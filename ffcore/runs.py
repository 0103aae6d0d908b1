"""Saving a training run to a checkpoint and resuming it exactly.

A run checkpoint is an ordinary FFLib checkpoint (see :mod:`ffcore.checkpoint`) whose
description also holds the full ``TrainConfig``, the history and the component names, and
whose payload holds the training state: epoch and batch counters, the learning rates the
schedule scales, and torch's RNG states. Data order is a function of seed and epoch, so
``resume_run`` continues bit for bit where the saved run stopped (on the CPU).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ffcore.checkpoint import (
    component_sources,
    read_checkpoint,
    require_components,
    restore_weights,
    save_checkpoint,
)
from ffcore.checkpoint_schema import schema_error
from ffcore.checkpoint_tensors import check_training_state
from ffcore.components import KINDS
from ffcore.config import TrainConfig, resumable_settings
from ffcore.data import num_batches
from ffcore.errors import CheckpointError, FFLibError, InvalidValueError
from ffcore.run_data import LOCATION_OPTIONS, dataset_kwargs
from ffcore.selection import copy_weights
from ffcore.training import TrainingRun, build_run

#: Settings a checkpoint's config may not decide when resuming: where the data lives
#: and whether it may be downloaded belong to the machine and the user resuming.
LOCAL_SETTINGS = {"data_root": None, "download": True}


def component_names(run: TrainingRun) -> dict[str, str | None]:
    """Every component the run uses, by kind: the run's own and those the model was
    built from (layer, goodness, loss)."""
    return {**run.names, **run.model.component_names()}


def training_state(run: TrainingRun) -> dict[str, Any]:
    """Counters, scheduled learning rates and RNG states: what an exact resume needs."""
    return {
        "epoch": run.epoch,
        "batch": run.batch,
        "step": run.step,
        "loss_sum": run.loss_sum,
        "skipped": run.skipped,
        "base_lrs": run.base_lrs,
        "loss_reference": run.loss_reference,
        "selection": run.selection.state_dict(),
        "average": run.average.state_dict() if run.average is not None else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def save_run(
    run: TrainingRun, path: str | os.PathLike[str], metrics: Mapping[str, float] | None = None
) -> Path:
    """Write ``run`` (model, optimizers, training state, description) to ``path``."""
    config, data = run.config, run.data
    components = component_names(run)
    kept, training = run.selection.saved_weights(run.model, run.epoch, run.batch)
    state = training_state(run)
    if training is not None:
        state["resume_weights"] = {k: v.detach().cpu() for k, v in training.items()}
    finished = run.epoch >= config.epochs or run.selection.stopped
    return save_checkpoint(
        path,
        run.model,
        model_name=run.names["model"],
        model_options=config.model_kwargs(),
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        extra={
            "dataset": {"name": run.names["dataset"], "options": dataset_kwargs(config)},
            "probe": run.names["probe"],
            "negatives": run.names["negatives"],
            "components": components,
            "component_sources": component_sources(components),
            "epoch": run.epoch,
            "batch": run.batch,
            "complete": finished and run.batch == 0,
            "kept_epoch": run.selection.kept_epoch(run.epoch),
            "metrics": dict(metrics) if metrics else (run.history[-1] if run.history else {}),
            "history": run.history,
            "config": config.to_dict(),
            "class_names": list(data.class_names),
            "preprocessing": None if data.preprocessing is None else data.preprocessing.to_dict(),
        },
        state=state,
        weights=kept,
    )


def resume_run(
    path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> TrainingRun:
    """Rebuild the run saved in ``path`` and restore it to where it stopped.

    ``overrides`` may change only the settings declared resumable (e.g. more ``epochs``,
    see :func:`~ffcore.config.resumable_settings`).
    """
    overrides = dict(overrides or {})
    resumable = resumable_settings()
    for key in overrides:
        if key not in resumable:
            raise InvalidValueError(
                "setting when resuming",
                key,
                f"one of {', '.join(resumable)} (the rest comes from the checkpoint)",
            )
    payload = read_checkpoint(path)
    meta, state = payload["meta"], payload.get("state")
    if not isinstance(state, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} holds no training state to resume from")
    require_components(meta, KINDS, path)
    config = saved_config(meta["config"], overrides, path)
    run = build_run(config)
    check_training_state(
        state,
        path,
        model=run.model,
        optimizers=run.model.optimizers(),
        batches_per_epoch=num_batches(len(run.data.train), config.batch_size),
        averages=run.average.averages if run.average is not None else None,
    )
    restore_weights(run.model, payload, path)
    run.epoch, run.batch, run.step = int(state["epoch"]), int(state["batch"]), int(state["step"])
    run.loss_sum, run.skipped = float(state["loss_sum"]), int(state["skipped"])
    run.base_lrs = [[float(lr) for lr in lrs] for lrs in state["base_lrs"]]
    reference = state.get("loss_reference")
    run.loss_reference = float(reference) if reference is not None else None
    run.history = list(meta.get("history", []))
    restore_selection(run, state, path)
    if run.average is not None:
        run.average.load_state_dict(state["average"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        for device, rng in enumerate(state["rng_cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(rng, device)
    return run


def saved_config(
    saved: Mapping[str, Any], overrides: Mapping[str, Any], path: str | os.PathLike[str]
) -> TrainConfig:
    """The config a checkpoint was trained with, as a resumed run uses it.

    Where the data lives and whether it may be downloaded (:data:`LOCAL_SETTINGS`, and
    ``root`` / ``download`` among the data set's options) come from the user resuming,
    never from the file. A config that does not check names the file and the field.
    """
    values = {**saved, **LOCAL_SETTINGS}
    dataset_options = values.get("dataset_options")
    if isinstance(dataset_options, Mapping):
        values["dataset_options"] = {
            k: v for k, v in dataset_options.items() if k not in LOCATION_OPTIONS
        }
    try:
        return TrainConfig.from_dict({**values, **overrides})
    except FFLibError as exc:
        raise schema_error(path, "config", f"a valid training config ({exc})") from None


def restore_selection(
    run: TrainingRun, state: Mapping[str, Any], path: str | os.PathLike[str]
) -> None:
    """The kept weights (now in the model) held aside again, the counters restored, and
    the weights training had reached put back into the model."""
    selection = run.selection
    selection.load_state_dict(state.get("selection") or {})
    if selection.keep == "best" and selection.best_epoch:
        selection.best_weights = copy_weights(run.model)
    resume_weights = state.get("resume_weights")
    if resume_weights is not None:  # checked against the model by check_training_state
        run.model.load_state_dict(resume_weights)
