"""The model interface and the capabilities probes look for."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from ffcore.components import normalize_name
from ffcore.errors import FFLibError
from ffcore.interfaces.batch import Batch
from ffcore.interfaces.layer import FFLayer, LayerObserver, Objective
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
    num_classes: int
    _observer: LayerObserver | None = None

    @abstractmethod
    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """Train on one batch (inputs ``batch.x``, labels ``batch.y``), with negatives from
        ``negatives(batch, self)``; return the detached loss."""

    def ff_layers(self) -> list[FFLayer]:
        """The model's FF layers, in the order their indices count (registration order
        by default: how ``nn.Module.modules`` finds them)."""
        return [module for module in self.modules() if isinstance(module, FFLayer)]

    @property
    def observer(self) -> LayerObserver | None:
        """Receives every FF layer's training step; ``None`` (the default) costs nothing.

        The trainer sets it when a plugin observes layer steps; setting it hands it to
        each of :meth:`ff_layers` with its index, and the layers report their own steps.
        """
        return self._observer

    @observer.setter
    def observer(self, observer: LayerObserver | None) -> None:
        self._observer = observer
        for index, layer in enumerate(self.ff_layers()):
            layer.observe(observer, index)

    def component_names(self) -> dict[str, str | None]:
        """The registered names of the ``layer``, ``goodness`` and ``loss`` the model's FF
        layers were built from; ``None`` where they differ between layers or have no
        name (built from Python objects, or no FF layers at all)."""
        layers = self.ff_layers()

        def common(names: set[str | None]) -> str | None:
            return names.pop() if len(names) == 1 else None

        return {
            "layer": common({layer.component_name for layer in layers}),
            "goodness": common({_name_of(layer.objective, "goodness") for layer in layers}),
            "loss": common({_name_of(layer.objective, "loss") for layer in layers}),
        }

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer the model steps (per-layer ones included), for checkpoints,
        the learning-rate schedule and weight averaging: the same objects for the whole
        run, each stepped with ``step()``."""
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


def _name_of(objective: Objective | None, kind: str) -> str | None:
    """The name ``objective`` gives its ``kind`` component (``None``: an object or none)."""
    component = getattr(objective, kind, None)
    return normalize_name(component) if isinstance(component, str) else None


@runtime_checkable
class LabelScorer(Protocol):
    """A model that can score every candidate label of an input (what TryAll needs).

    ``x`` is the inputs, or a training :class:`Batch` (the ``hard`` sampler passes one),
    whose cached work the model may reuse (see :func:`~ffcore.interfaces.inputs_of`).
    """

    num_classes: int

    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """Shape ``(B, num_classes)``: the signed goodness with each label (higher = better)."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """A model with a read-out that gives class logits directly (``x`` as for
    :class:`LabelScorer`; the ``neutral`` sampler passes a training batch)."""

    def logits(self, x: Tensor | Batch) -> Tensor:
        """Shape ``(B, num_classes)``."""
        ...


C = TypeVar("C")


def require(model: object, capability: type[C], message: str) -> C:
    """``model``, if it has ``capability`` (a runtime-checkable protocol such as
    :class:`LabelScorer`), else an :class:`~ffcore.errors.FFLibError`: ``message`` with
    ``{model}`` standing for the model's class name. How probes and samplers say what a
    model lacks and what to use instead."""
    if not isinstance(model, capability):
        raise FFLibError(message.format(model=type(model).__name__))
    return model
