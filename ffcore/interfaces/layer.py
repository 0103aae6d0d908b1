"""The FF layer interface: a module with its own optimizer and a local training step."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable

import torch
from torch import Tensor, nn

from ffcore.errors import DivergenceError, InvalidValueError
from ffcore.interfaces.goodness import GoodnessFunction
from ffcore.interfaces.loss import FFLoss
from ffcore.optim import check_lr, make_optimizer
from ffcore.validate import boolean, number

if TYPE_CHECKING:
    from typing_extensions import Unpack


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


class ObjectiveOptions(TypedDict, total=False):
    """:class:`Objective`'s fields as keyword options of a layer's constructor."""

    goodness: str | GoodnessFunction
    loss: str | FFLoss
    threshold: float | None
    maximise: bool
    optimizer: str
    lr: float


@dataclass(frozen=True)
class Objective:
    """What an FF layer learns towards and how it steps: the part every layer kind
    shares. :meth:`FFLayer.set_objective` builds the layer's goodness function, loss,
    threshold and optimizer from it.

    Args:
        goodness: a registered goodness name or a :class:`GoodnessFunction`.
        loss: a registered loss name or an :class:`FFLoss`.
        threshold: the goodness threshold; ``None`` takes the goodness' default for the
            layer's units (the width itself for ``sum-squares``).
        maximise: ``True`` pushes positive goodness up, ``False`` down.
        optimizer: ``adam`` (default), ``adamw``, ``sgd`` or ``rmsprop``.
        lr: the optimizer's learning rate.
    """

    goodness: str | GoodnessFunction = "sum-squares"
    loss: str | FFLoss = "softplus-threshold"
    threshold: float | None = None
    maximise: bool = True
    optimizer: str = "adam"
    lr: float = 3e-3

    def __post_init__(self) -> None:
        if not isinstance(self.goodness, str | GoodnessFunction):
            raise InvalidValueError(
                "goodness", self.goodness, "a goodness name or a GoodnessFunction"
            )
        if not isinstance(self.loss, str | FFLoss):
            raise InvalidValueError("loss", self.loss, "a loss name or an FFLoss")
        boolean("maximise", self.maximise)
        check_lr(self.lr)

    @classmethod
    def of(
        cls, objective: Objective | None = None, **options: Unpack[ObjectiveOptions]
    ) -> Objective:
        """``objective`` (the defaults when ``None``) with the given fields replaced: how
        a layer's constructor takes ``objective=`` and ``goodness=``, ``lr=``... alike."""
        base = cls() if objective is None else objective
        fields = [field.name for field in dataclasses.fields(cls)]
        for option in options:
            if option not in fields:
                raise InvalidValueError(
                    "layer option", option, f"one of the layer's options or {', '.join(fields)}"
                )
        return dataclasses.replace(base, **options) if options else base

    def goodness_function(self) -> GoodnessFunction:
        """The goodness function, built by name from the registry when given as one."""
        if isinstance(self.goodness, GoodnessFunction):
            return self.goodness
        from ffcore.registry import create_goodness  # the registry imports the interfaces

        return create_goodness(self.goodness)

    def loss_function(self) -> FFLoss:
        """The loss, built by name from the registry when given as one."""
        if isinstance(self.loss, FFLoss):
            return self.loss
        from ffcore.registry import create_loss  # the registry imports the interfaces

        return create_loss(self.loss)


def resolve_threshold(threshold: float | None, default: float) -> float:
    """A layer's threshold: ``default`` (the goodness' own) when ``None``, else checked.

    A given threshold must be a finite number on the same side of zero as the default
    (a sum of squares never goes below zero, so a negative threshold would never be met).
    """
    if threshold is None:
        return float(default)
    sign = "non-negative" if default >= 0 else "non-positive"
    expected = f"a finite {sign} number for this goodness"
    value = number("threshold", threshold, expected=expected)
    if (value < 0 <= default) or (value > 0 >= default):
        raise InvalidValueError("threshold", threshold, expected)
    return value


class LayerObserver(Protocol):
    """Receives every layer's training step (the trainer forwards it to plugin hooks)."""

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        """Called after layer ``index`` took its step."""


class FFLayer(nn.Module, ABC):
    """A Forward-Forward layer.

    Its input is detached (no gradient crosses layers) and normalised by the layer. It owns
    a goodness function, a loss, a threshold and an optimizer, and trains on its own with
    :meth:`train_step`. ``maximise=True`` pushes positive goodness above the threshold;
    ``maximise=False`` pushes it below (negative data above). A subclass builds them from
    an :class:`Objective` with :meth:`set_objective` at the end of its ``__init__``.
    """

    goodness_fn: GoodnessFunction
    loss_fn: FFLoss
    threshold: float
    maximise: bool
    optimizer: torch.optim.Optimizer
    #: What :meth:`set_objective` built the layer from (its ``lr`` is the initial rate).
    objective: Objective | None = None
    #: The name the layer was built by from the registry (see
    #: :func:`ffcore.layers.build_layer`); ``None`` for a layer built from Python.
    component_name: str | None = None
    #: Check each step's loss before updating (one host sync); a NaN/inf loss raises
    #: :class:`~ffcore.errors.DivergenceError` instead of writing NaN into the weights.
    #: The trainer turns it on for CPU runs and ``--on-nonfinite skip``; on accelerators
    #: it checks once per batch instead, to keep the device busy.
    check_finite: bool = True
    #: The positive rows' activations of the last training step, for :attr:`alive`.
    _last_positive: Tensor | None = None
    _observer: LayerObserver | None = None
    _index: int = 0

    def set_objective(
        self,
        objective: Objective,
        num_features: int,
        *,
        goodness: GoodnessFunction | None = None,
        threshold_scale: float = 1.0,
    ) -> None:
        """Build the goodness function, loss, threshold, direction and optimizer.

        Call it once every parameter exists (the optimizer takes them). The default
        threshold is the goodness' own for ``num_features`` units, times
        ``threshold_scale`` (a goodness summed over ``n`` positions: ``n``); ``goodness``
        replaces the objective's goodness function (e.g. one that wraps it).
        """
        self.objective = objective
        self.goodness_fn = objective.goodness_function() if goodness is None else goodness
        self.loss_fn = objective.loss_function()
        default = self.goodness_fn.default_threshold(num_features) * threshold_scale
        self.threshold = resolve_threshold(objective.threshold, default)
        self.maximise = objective.maximise
        self.optimizer = make_optimizer(objective.optimizer, self.parameters(), objective.lr)

    def observe(self, observer: LayerObserver | None, index: int) -> None:
        """Report each training step to ``observer`` as layer ``index`` (``None``: stop).

        A model's ``observer`` setter calls it for each of its FF layers.
        """
        self._observer = observer
        self._index = index

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
        backward, step, the ``alive`` flag and the observer's report (see :meth:`observe`).
        Layers whose forward pass differs (e.g. recurrent ones) compute ``h`` their own way
        and call this. ``goodness`` is ``h``'s goodness when the layer computed it together
        with ``h`` (a fused step, see :meth:`GoodnessFunction.square_sum_scale`); it must
        equal ``goodness_fn(h)``.
        """
        g = self.goodness_fn(h) if goodness is None else goodness
        loss = self.loss(g[:num_pos], g[num_pos:])
        extra = self.extra_loss(h, num_pos)
        if extra is not None:
            loss = loss + extra
        return self.step_on(loss, h, g, num_pos)

    def step_on(self, loss: Tensor, h: Tensor, g: Tensor, num_pos: int) -> LayerStepResult:
        """Take the optimizer step for ``loss``, computed from this layer's activations
        ``h`` (the first ``num_pos`` rows positive) and their goodness ``g``.

        What every local objective shares once its loss is known: the non-finite check
        (when ``check_finite``, before any weight changes), backward, step, the ``alive``
        flag and the observer's report. :meth:`update` calls it with the FF loss; a layer
        trained on another local loss (e.g. a channel-wise competitive one) calls it
        with its own.
        """
        if self.check_finite and not bool(torch.isfinite(loss)):
            raise DivergenceError(
                f"non-finite loss {float(loss.detach())} in {type(self).__name__}", layer=self
            )
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.optimizer.step()
        h = h.detach()
        self._last_positive = h[:num_pos]
        result = LayerStepResult(h=h, g=g.detach(), num_pos=num_pos, loss=loss.detach())
        if self._observer is not None:
            self._observer.layer_trained(self._index, self, result)
        return result

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


@runtime_checkable
class LabelAppender(Protocol):
    """A first layer that takes an image and a label code apart (FFDense does): the
    image's share of its matmul, ``W_x · x``, is then computed once for every label."""

    def image_drive(self, x: Tensor) -> Tensor:
        """``W_x · x`` for images ``x``: ``(B, out)``, no gradient."""

    def forward_appended(self, x: Tensor, tails: Tensor, drive: Tensor | None = None) -> Tensor:
        """The output for every image with every code: ``(B, T, out)``."""

    def forward_tiled(
        self, x: Tensor, tails: Tensor, drive: Tensor | None = None, order: Tensor | None = None
    ) -> Tensor:
        """The output for image ``r % B`` with code ``r``, for each row ``r`` of ``tails``;
        with ``order``, those rows taken in that order (``rows[order]``)."""

    def train_tiled(
        self,
        x: Tensor,
        tails: Tensor,
        num_pos: int,
        drive: Tensor | None = None,
        order: Tensor | None = None,
    ) -> LayerStepResult:
        """The layer's training step on ``forward_tiled``'s rows (positives first)."""
