"""Learning-rate schedules over epochs, applied to every optimizer of a model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ffcore.errors import InvalidValueError

LR_SCHEDULES = ("constant", "linear-cooldown", "cosine")


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning-rate multiplier for 0-based ``epoch`` of ``epochs``.

    ``linear-cooldown`` keeps the rate for the first half, then decays it linearly towards
    zero (Hinton's schedule); ``cosine`` follows half a cosine from 1 to near 0.
    """
    if schedule not in LR_SCHEDULES:
        raise InvalidValueError("lr_schedule", schedule, f"one of {', '.join(LR_SCHEDULES)}")
    if schedule == "constant" or epochs <= 1:
        return 1.0
    if schedule == "linear-cooldown":
        half = epochs // 2
        if epoch < half:
            return 1.0
        return (epochs - epoch) / (epochs - half + 1)
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def current_lrs(optimizers: Sequence[torch.optim.Optimizer]) -> list[list[float]]:
    """The learning rate of every parameter group of every optimizer."""
    return [[float(group["lr"]) for group in opt.param_groups] for opt in optimizers]


def scale_lrs(
    optimizers: Sequence[torch.optim.Optimizer],
    base_lrs: list[list[float]],
    factor: float | Sequence[float],
) -> None:
    """Set every group's learning rate to its base rate times ``factor`` (one for all
    optimizers, or one per optimizer)."""
    factors = [factor] * len(optimizers) if isinstance(factor, int | float) else list(factor)
    for optimizer, bases, scale in zip(optimizers, base_lrs, factors, strict=True):
        for group, base in zip(optimizer.param_groups, bases, strict=True):
            group["lr"] = base * scale


def schedule_factors(schedule: str, positions: Sequence[tuple[int, int]]) -> list[float]:
    """:func:`lr_factor` for each optimizer's ``(position, length)`` in its schedule."""
    return [lr_factor(schedule, position, length) for position, length in positions]
