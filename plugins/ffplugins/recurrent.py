"""FFRecurrentLayer: a Forward-Forward layer with bottom-up, top-down and recurrent input."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer, LayerStepResult, Objective, ObjectiveOptions
from ffcore.layers import (
    ACTIVATIONS,
    INPLACE_ACTIVATIONS,
    NORMS,
    choice,
    input_scale,
    integer,
    layer_factory,
    number,
    positive_int,
)
from ffcore.precision import cast_back

if TYPE_CHECKING:
    from typing_extensions import Unpack


class FFRecurrentLayer(FFLayer):
    """One hidden layer of an FFRNN: it sees the layer below, the layer above and itself.

    Each step computes the layer's new state from the states of its neighbours::

        new = beta · act(W_fw · norm(below) + W_bw · norm(above) + b) + (1 - beta) · previous

    (FFLib 0.3.0's ``FFRecurrentLayer.forward``). ``below`` and ``above`` are detached and
    normalised per row (a zero row stays zero); ``previous`` is detached. Goodness is taken
    from the new state. Only the layer's own weights learn: no gradient crosses layers or
    frames.

    Args:
        fw_features: width of the layer below (the forward, bottom-up input).
        rc_features: number of units (the width of the layer's own, recurrent state).
        bw_features: width of the layer above (the backward, top-down input).
        activation: ``relu`` (default), ``gelu``, ``leaky-relu``, ``tanh``, ``sigmoid``,
            ``identity``.
        norm: normalisation of ``below`` and ``above``: ``rms`` (default), ``l2`` (0.3.0's)
            or ``none``.
        beta: the weight of the new drive against the previous state, in ``(0, 1]``; ``1``
            forgets the previous state entirely.
        objective: goodness, loss, threshold (by default the goodness' own for
            ``rc_features`` units), direction, optimizer and learning rate
            (:class:`~ffcore.interfaces.Objective`), or its fields one by one.

    Parameters ``fw`` (``rc × fw``), ``bw`` (``rc × bw``) and ``bias`` (``rc``) start like
    ``nn.Linear``'s: uniform in ``±1/sqrt(fan_in)`` of each weight's own input width.
    """

    def __init__(
        self,
        fw_features: int,
        rc_features: int,
        bw_features: int,
        *,
        activation: str = "relu",
        norm: str = "rms",
        beta: float = 0.7,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        objective: Objective | None = None,
        **options: Unpack[ObjectiveOptions],
    ) -> None:
        super().__init__()
        self.fw_features = positive_int("fw_features", fw_features)
        self.rc_features = positive_int("rc_features", rc_features)
        self.bw_features = positive_int("bw_features", bw_features)
        self.activation_name = choice("activation", activation, ACTIVATIONS)
        self.norm = choice("norm", norm, NORMS)
        self.beta = number("beta", beta, low=0, low_open=True, high=1)
        self.fw = nn.Parameter(torch.empty(rc_features, fw_features, device=device, dtype=dtype))
        self.bw = nn.Parameter(torch.empty(rc_features, bw_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(rc_features, device=device, dtype=dtype))
        self.reset_parameters()
        self.act = ACTIVATIONS[activation]()
        self.eps = eps
        self.set_objective(Objective.of(objective, **options), rc_features)

    def reset_parameters(self) -> None:
        """Initialise ``fw``, ``bw`` and ``bias`` as ``nn.Linear`` does."""
        for weight in (self.fw, self.bw):
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.fw_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def normalize(self, x: Tensor, features: int, name: str) -> Tensor:
        """``x`` detached and normalised per row; ``features`` is the width it must have."""
        x = x.detach()
        if x.dim() != 2 or x.shape[1] != features:
            raise InvalidValueError(
                f"{name} shape", tuple(x.shape), f"(batch, {features}) for this FFRecurrentLayer"
            )
        return x * input_scale(x, self.norm, self.eps)

    def bottom_up(self, below: Tensor) -> Tensor:
        """``W_fw · norm(below) + b``: the drive from the layer below.

        Reusable while ``below`` stays the same (the input image, across frames and, for
        TryAll, across labels): pass it to :meth:`step` as ``drive``.
        """
        below = self.normalize(below, self.fw_features, "below")
        # cast back from bfloat16 under mixed precision: the sums, activation and state
        # mixing stay float32 (the label's top-down drive is a small part of the sum)
        return cast_back(F.linear(below, self.fw, self.bias), self.fw)

    def step(
        self,
        below: Tensor | None,
        previous: Tensor | None,
        above: Tensor | None,
        *,
        drive: Tensor | None = None,
    ) -> Tensor:
        """The layer's new state, ``(B, rc_features)``, from its neighbours' states.

        ``beta · act(W_fw · norm(below) + W_bw · norm(above) + b) + (1 - beta) · previous``.
        ``previous=None`` and ``above=None`` stand for zero states (and skip their work);
        ``drive`` is a precomputed :meth:`bottom_up` (then ``below`` is not read).
        Gradients reach only this layer's parameters.
        """
        fresh = drive is None  # a tensor of our own, which inference may update in place
        if drive is None:
            if below is None:
                raise InvalidValueError("below", below, "a tensor, or a precomputed drive")
            drive = self.bottom_up(below)
        if above is not None:
            if above.shape[0] != drive.shape[0]:
                raise InvalidValueError(
                    "above shape", tuple(above.shape), f"{drive.shape[0]} rows, as below has"
                )
            above = self.normalize(above, self.bw_features, "above")
            drive = drive + cast_back(F.linear(above, self.bw), self.bw)
            fresh = True
        in_place = fresh and not drive.requires_grad
        new: Tensor = (
            INPLACE_ACTIVATIONS[self.activation_name](drive) if in_place else self.act(drive)
        )
        if previous is not None and tuple(previous.shape) != tuple(new.shape):
            raise InvalidValueError(
                "previous shape",
                tuple(previous.shape),
                f"{tuple(new.shape)} for this FFRecurrentLayer",
            )
        if self.beta == 1.0:
            return new
        if in_place:
            new.mul_(self.beta)
            if previous is not None:
                new.add_(previous.detach(), alpha=1.0 - self.beta)
            return new
        new = self.beta * new
        if previous is not None:
            new = new + (1.0 - self.beta) * previous.detach()
        return new

    def forward(self, x: Tensor) -> Tensor:
        """The bottom-up state alone: :meth:`step` with zero previous and top-down states.

        That is ``beta · act(W_fw · norm(x) + b)``: what the layer computes on the first,
        bottom-up pass of a network whose upper layers are still silent. The inherited
        :meth:`train_step` trains on it; a recurrent network uses :meth:`train_frame`.
        """
        return self.step(x, None, None)

    def train_frame(
        self, below: Tensor, previous: Tensor | None, above: Tensor | None, num_pos: int
    ) -> LayerStepResult:
        """One local update on a frame of positive and negative states, in one pass.

        Rows ``[:num_pos]`` of ``below``, ``previous`` and ``above`` are positive, the rest
        negative (``k`` per positive, sample-major), so each weight takes one matmul for
        both. Returns the new states (computed before the update, detached) with their
        goodness and the loss. Like :meth:`FFLayer.train_step` it refuses a non-finite loss
        (when ``check_finite``) and records in ``alive`` whether any positive unit fired.
        """
        expected = f"between 1 and {len(below) - 1}: positives then negatives"
        if integer("num_pos", num_pos, minimum=1, expected=expected) >= len(below):
            raise InvalidValueError("num_pos", num_pos, expected)
        return self.update(self.step(below, previous, above), num_pos)

    def extra_repr(self) -> str:
        direction = "maximise" if self.maximise else "minimise"
        return (
            f"fw_features={self.fw_features}, rc_features={self.rc_features}, "
            f"bw_features={self.bw_features}, activation={self.activation_name}, "
            f"norm={self.norm}, beta={self.beta:g}, threshold={self.threshold:g}, {direction}"
        )


ffrecurrent = layer_factory(
    FFRecurrentLayer,
    "Recurrent FF layer: beta·act(W_fw·below + W_bw·above + b) + (1-beta)·previous.",
    name="ffrecurrent",
)
