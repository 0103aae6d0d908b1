"""The FF layer interface: a module with its own optimizer and a local training step."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from ffcore.errors import DivergenceError, InvalidValueError
from ffcore.interfaces.goodness import GoodnessFunction
from ffcore.interfaces.loss import FFLoss
from ffcore.optim import check_lr


@dataclass(frozen=True)
class LayerStepResult:
    """What one local training step saw: detached outputs, goodness and loss.

    ``h`` holds every row (positives first, then negatives); ``h_pos`` and ``h_neg`` are
    views of it, so feeding ``h`` to the next layer needs no copy.
    """

    h: Tensor
    g: Tensor
    num_pos: int
    loss: Tensor

    @property
    def h_pos(self) -> Tensor:
        """Activations of the positive rows."""
        return self.h[: self.num_pos]

    @property
    def h_neg(self) -> Tensor:
        """Activations of the negative rows."""
        return self.h[self.num_pos :]

    @property
    def g_pos(self) -> Tensor:
        """Goodness of the positive rows."""
        return self.g[: self.num_pos]

    @property
    def g_neg(self) -> Tensor:
        """Goodness of the negative rows."""
        return self.g[self.num_pos :]


def resolve_threshold(threshold: float | None, default: float) -> float:
    """A layer's threshold: ``default`` (the goodness' own) when ``None``, else checked.

    A given threshold must be a finite number on the same side of zero as the default
    (a sum of squares never goes below zero, so a negative threshold would never be met).
    """
    if threshold is None:
        return float(default)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or (threshold < 0 <= default)
        or (threshold > 0 >= default)
    ):
        sign = "non-negative" if default >= 0 else "non-positive"
        raise InvalidValueError("threshold", threshold, f"a finite {sign} number for this goodness")
    return float(threshold)


class LayerObserver(Protocol):
    """Receives every layer's training step (the trainer forwards it to plugin hooks)."""

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        """Called after layer ``index`` took its step."""


class FFLayer(nn.Module, ABC):
    """A Forward-Forward layer.

    Its input is detached (no gradient crosses layers) and normalised by the layer. It owns
    a goodness function, a loss, a threshold and an optimizer, and trains on its own with
    :meth:`train_step`. ``maximise=True`` pushes positive goodness above the threshold;
    ``maximise=False`` pushes it below (negative data above).
    """

    goodness_fn: GoodnessFunction
    loss_fn: FFLoss
    threshold: float
    maximise: bool
    optimizer: torch.optim.Optimizer
    #: Check each step's loss before updating (one host sync); a NaN/inf loss raises
    #: :class:`~ffcore.errors.DivergenceError` instead of writing NaN into the weights.
    #: The trainer turns it on for CPU runs and ``--on-nonfinite skip``; on accelerators
    #: it checks once per batch instead, to keep the device busy.
    check_finite: bool = True
    #: The positive rows' activations of the last training step, for :attr:`alive`.
    _last_positive: Tensor | None = None

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Activations for a (detached, normalised) input."""

    def goodness(self, h: Tensor) -> Tensor:
        """Raw goodness of activations ``h``: shape ``(B,)``."""
        return self.goodness_fn(h)

    def score(self, h: Tensor) -> Tensor:
        """Goodness signed so that higher always means "more positive"."""
        g = self.goodness_fn(h)
        return g if self.maximise else -g

    def loss(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """The layer's loss for raw positive and negative goodness."""
        if self.maximise:
            return self.loss_fn(g_pos, g_neg, self.threshold)
        return self.loss_fn(-g_pos, -g_neg, -self.threshold)

    def train_step(self, x_pos: Tensor, x_neg: Tensor) -> LayerStepResult:
        """One local update on positive and negative inputs, in one forward pass.

        Returns the detached activations (computed before the update), which feed the next
        layer, with their goodness and the loss.
        """
        return self.train_joint(torch.cat((x_pos, x_neg)), x_pos.shape[0])

    def train_joint(self, x: Tensor, num_pos: int) -> LayerStepResult:
        """:meth:`train_step` on rows already stacked: ``x[:num_pos]`` positive, the rest
        negative. Networks chain layers through it without splitting and re-joining."""
        return self.update(self(x), num_pos)

    def extra_loss(self, h: Tensor, num_pos: int) -> Tensor | None:
        """A regulariser added to the FF loss (e.g. peer normalisation); none by default."""
        return None

    def update(self, h: Tensor, num_pos: int, *, goodness: Tensor | None = None) -> LayerStepResult:
        """Take the optimizer step for activations ``h`` (positives first, then negatives).

        The shared tail of every layer's training step: goodness, loss, the non-finite
        check (when ``check_finite``: a NaN/inf loss raises before any weight changes),
        backward, step, and the ``alive`` flag. Layers whose forward pass differs (e.g.
        recurrent ones) compute ``h`` their own way and call this. ``goodness`` is ``h``'s
        goodness when the layer computed it together with ``h`` (a fused step, see
        :meth:`GoodnessFunction.square_sum_scale`); it must equal ``goodness_fn(h)``.
        """
        g = self.goodness_fn(h) if goodness is None else goodness
        loss = self.loss(g[:num_pos], g[num_pos:])
        extra = self.extra_loss(h, num_pos)
        if extra is not None:
            loss = loss + extra
        if self.check_finite and not bool(torch.isfinite(loss)):
            raise DivergenceError(
                f"non-finite loss {float(loss.detach())} in {type(self).__name__}", layer=self
            )
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.optimizer.step()
        h = h.detach()
        self._last_positive = h[:num_pos]
        return LayerStepResult(h=h, g=g.detach(), num_pos=num_pos, loss=loss.detach())

    @property
    def alive(self) -> Tensor | None:
        """Whether any unit fired on the last positive batch (a 0-d bool tensor), or
        ``None`` before the first step. Computed when asked (the trainer asks once an
        epoch), not in every step."""
        last = self._last_positive
        return None if last is None else last.ne(0).any()

    @property
    def lr(self) -> float:
        """The learning rate of the layer's optimizer (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        value = check_lr(value)
        for group in self.optimizer.param_groups:
            group["lr"] = value
