"""FFRecurrentLayer: a Forward-Forward layer with bottom-up, top-down and recurrent input."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore import create_goodness, create_loss, hookimpl
from ffcore.errors import InvalidValueError
from ffcore.hookspecs import Register
from ffcore.interfaces import FFLayer, FFLoss, GoodnessFunction, LayerStepResult, resolve_threshold
from ffcore.optim import make_optimizer
from ffcore.precision import cast_back
from ffplugins.dense import ACTIVATIONS, INPLACE_ACTIVATIONS, NORMS, input_scale


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
        goodness: a registered goodness name or a :class:`GoodnessFunction`.
        loss: a registered loss name or an :class:`FFLoss`.
        threshold: the goodness threshold; ``None`` takes the goodness' default for
            ``rc_features`` units.
        maximise: ``True`` pushes positive goodness up, ``False`` down.
        beta: the weight of the new drive against the previous state, in ``(0, 1]``; ``1``
            forgets the previous state entirely.
        optimizer: ``adam`` (default), ``adamw``, ``sgd`` or ``rmsprop``.
        lr: the optimizer's learning rate.

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
        goodness: str | GoodnessFunction = "sum-squares",
        loss: str | FFLoss = "softplus-threshold",
        threshold: float | None = None,
        maximise: bool = True,
        beta: float = 0.7,
        optimizer: str = "adam",
        lr: float = 3e-3,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for field, value in (
            ("fw_features", fw_features),
            ("rc_features", rc_features),
            ("bw_features", bw_features),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(field, value, "a positive integer")
        if activation not in ACTIVATIONS:
            raise InvalidValueError("activation", activation, f"one of {', '.join(ACTIVATIONS)}")
        if norm not in NORMS:
            raise InvalidValueError("norm", norm, f"one of {', '.join(NORMS)}")
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta <= 1:
            raise InvalidValueError("beta", beta, "a number in (0, 1]")
        self.fw_features = fw_features
        self.rc_features = rc_features
        self.bw_features = bw_features
        self.fw = nn.Parameter(torch.empty(rc_features, fw_features, device=device, dtype=dtype))
        self.bw = nn.Parameter(torch.empty(rc_features, bw_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(rc_features, device=device, dtype=dtype))
        self.reset_parameters()
        self.activation_name = activation
        self.act = ACTIVATIONS[activation]()
        self.norm = norm
        self.eps = eps
        self.beta = float(beta)
        self.goodness_fn = create_goodness(goodness) if isinstance(goodness, str) else goodness
        self.loss_fn = create_loss(loss) if isinstance(loss, str) else loss
        default_threshold = self.goodness_fn.default_threshold(rc_features)
        self.threshold = resolve_threshold(threshold, default_threshold)
        self.maximise = maximise
        self.optimizer = make_optimizer(optimizer, self.parameters(), lr)

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
        if (
            isinstance(num_pos, bool)
            or not isinstance(num_pos, int)
            or not 0 < num_pos < len(below)
        ):
            raise InvalidValueError(
                "num_pos", num_pos, f"between 1 and {len(below) - 1}: positives then negatives"
            )
        return self.update(self.step(below, previous, above), num_pos)

    def extra_repr(self) -> str:
        direction = "maximise" if self.maximise else "minimise"
        return (
            f"fw_features={self.fw_features}, rc_features={self.rc_features}, "
            f"bw_features={self.bw_features}, activation={self.activation_name}, "
            f"norm={self.norm}, beta={self.beta:g}, threshold={self.threshold:g}, {direction}"
        )


def ffrecurrent(
    fw_features: int,
    rc_features: int,
    bw_features: int,
    *,
    activation: str = "relu",
    norm: str = "rms",
    goodness: str = "sum-squares",
    loss: str = "softplus-threshold",
    threshold: float | None = None,
    maximise: bool = True,
    beta: float = 0.7,
    optimizer: str = "adam",
    lr: float = 3e-3,
) -> FFRecurrentLayer:
    """Recurrent FF layer: beta·act(W_fw·below + W_bw·above + b) + (1-beta)·previous."""
    return FFRecurrentLayer(
        fw_features,
        rc_features,
        bw_features,
        activation=activation,
        norm=norm,
        goodness=goodness,
        loss=loss,
        threshold=threshold,
        maximise=maximise,
        beta=beta,
        optimizer=optimizer,
        lr=lr,
    )


@hookimpl
def fflib_register_layers(register: Register) -> None:
    register("ffrecurrent", ffrecurrent, aliases=["ffrecurrentlayer"])
