"""The model interface and the capabilities probes look for."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ffcore.interfaces.layer import LayerObserver
from ffcore.optim import check_lr

if TYPE_CHECKING:
    from ffcore.interfaces.negatives import NegativeSampler


class FFModel(nn.Module, ABC):
    """A trainable network built from a config (FF or, for baselines, backprop).

    Models are ``nn.Module``s: ``parameters()``, ``state_dict()`` and ``.to(device)`` see
    every layer. A model trains one batch at a time with :meth:`train_batch`; how it is
    turned into predictions is the probe's job (see :class:`LabelScorer`, :class:`Classifier`).
    """

    #: The probe used when none is asked for.
    default_probe: ClassVar[str] = "tryall"
    #: Set by the trainer when a plugin observes layer steps; ``None`` costs nothing.
    observer: LayerObserver | None = None
    num_classes: int

    @abstractmethod
    def train_batch(self, x: Tensor, y: Tensor, negatives: NegativeSampler) -> Tensor:
        """Train on one batch of inputs ``x`` and labels ``y``; return the detached loss."""

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer the model steps (per-layer ones included), for checkpoints."""
        found: list[torch.optim.Optimizer] = []
        for module in self.modules():
            optimizer = getattr(module, "optimizer", None)
            if isinstance(optimizer, torch.optim.Optimizer):
                found.append(optimizer)
        return found

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimizer."""
        lr = check_lr(lr)
        for optimizer in self.optimizers():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (0-based) of ``epochs``; schedules override it."""

    def schedule_positions(self, epoch: int, epochs: int) -> list[tuple[int, int]]:
        """Where 0-based ``epoch`` of ``epochs`` falls in each optimizer's learning-rate
        schedule: ``(position, length)`` per optimizer, in :meth:`optimizers` order.

        By default every optimizer follows one schedule over all epochs. A model that
        trains in phases (FF+C) fits a schedule into each optimizer's own phase, so a
        cooldown ends where that optimizer stops or restarts.
        """
        return [(epoch, epochs)] * len(self.optimizers())

    def lr_scales(self, epoch: int, epochs: int) -> list[float]:
        """A factor per optimizer (in :meth:`optimizers` order) on its base learning rate
        in 0-based ``epoch`` of ``epochs``, applied together with the schedule's factor.

        All 1.0 by default. FF+C uses it to give its read-out its own learning rate
        (``readout_lr``) once it trains alone.
        """
        return [1.0] * len(self.optimizers())

    def extra_summary(self) -> dict[str, Any]:
        """Model-specific facts for run summaries (empty by default)."""
        return {}


@runtime_checkable
class LabelScorer(Protocol):
    """A model that can score every candidate label of an input (what TryAll needs)."""

    num_classes: int

    def goodness_per_label(self, x: Tensor) -> Tensor:
        """Shape ``(B, num_classes)``: the signed goodness with each label (higher = better)."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """A model with a read-out that gives class logits directly."""

    def logits(self, x: Tensor) -> Tensor:
        """Shape ``(B, num_classes)``."""
        ...
