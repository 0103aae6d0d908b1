"""FFDense (alias FFLinear): a fully connected Forward-Forward layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore import create_goodness, create_loss, hookimpl
from ffcore.errors import InvalidValueError
from ffcore.hookspecs import Register
from ffcore.interfaces import FFLayer, FFLoss, GoodnessFunction, resolve_threshold
from ffcore.optim import make_optimizer

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky-relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

#: In-place versions, for inference (no autograd): they spare a full-size allocation.
INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "gelu": F.gelu,
    "leaky-relu": F.leaky_relu_,
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "identity": lambda t: t,
}

#: Input normalisations: ``l2`` divides by the Euclidean length (the seed's), ``rms`` by
#: the root mean square (length / sqrt(width)), ``none`` leaves the input as it is.
NORMS = ("l2", "rms", "none")


def input_scale(x: Tensor, norm: str, eps: float) -> Tensor:
    """The factor (shape ``(B, 1)``) that normalises each row of ``x``."""
    if norm == "none":
        return torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    length = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if norm == "rms":
        length = length / (x.shape[1] ** 0.5)
    scale: Tensor = (length + eps).reciprocal()
    return scale


class FFDense(FFLayer):
    """``h = act(W · x / (‖x‖ + eps) + b)`` on a detached input, trained locally.

    Args:
        in_features: width of the input.
        out_features: number of units.
        activation: ``relu`` (default), ``gelu``, ``leaky-relu``, ``tanh``, ``sigmoid``,
            ``identity``.
        norm: input normalisation, ``rms`` (default), ``l2`` (the seed's) or ``none``.
        goodness: a registered goodness name or a :class:`GoodnessFunction`.
        loss: a registered loss name or an :class:`FFLoss`.
        threshold: the goodness threshold; ``None`` takes the goodness' default for
            this width (the width itself for ``sum-squares``).
        maximise: ``True`` pushes positive goodness up, ``False`` down.
        optimizer: ``adam`` (default), ``adamw``, ``sgd`` or ``rmsprop``.
        lr: the optimizer's learning rate.
    """

    peer_mean: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "relu",
        norm: str = "rms",
        goodness: str | GoodnessFunction = "sum-squares",
        loss: str | FFLoss = "softplus-threshold",
        threshold: float | None = None,
        maximise: bool = True,
        optimizer: str = "adam",
        lr: float = 3e-3,
        peer_norm: float = 0.0,
        peer_momentum: float = 0.9,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for field, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(field, value, "a positive integer")
        if activation not in ACTIVATIONS:
            raise InvalidValueError("activation", activation, f"one of {', '.join(ACTIVATIONS)}")
        if norm not in NORMS:
            raise InvalidValueError("norm", norm, f"one of {', '.join(NORMS)}")
        self.in_features = in_features
        self.out_features = out_features
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.activation_name = activation
        self.act = ACTIVATIONS[activation]()
        self.norm = norm
        self.eps = eps
        self.goodness_fn = create_goodness(goodness) if isinstance(goodness, str) else goodness
        self.loss_fn = create_loss(loss) if isinstance(loss, str) else loss
        default_threshold = self.goodness_fn.default_threshold(out_features)
        self.threshold = resolve_threshold(threshold, default_threshold)
        self.maximise = maximise
        if isinstance(peer_norm, bool) or not isinstance(peer_norm, int | float) or peer_norm < 0:
            raise InvalidValueError("peer_norm", peer_norm, "a weight >= 0 (0 turns it off)")
        if not 0 <= peer_momentum < 1:
            raise InvalidValueError("peer_momentum", peer_momentum, "a number in [0, 1)")
        self.peer_norm = float(peer_norm)
        self.peer_momentum = float(peer_momentum)
        #: Running mean activity of each unit on positive data (for peer normalisation);
        #: saved with the weights only when peer normalisation is on.
        self.register_buffer(
            "peer_mean",
            torch.zeros(out_features, device=device, dtype=dtype),
            persistent=self.peer_norm > 0,
        )
        self.optimizer = make_optimizer(optimizer, self.parameters(), lr)

    @property
    def weight(self) -> Tensor:
        """The weight matrix, shape ``(out_features, in_features)``."""
        return self.linear.weight

    @property
    def bias(self) -> Tensor | None:
        """The bias, shape ``(out_features,)``, or ``None``."""
        bias: Tensor | None = self.linear.bias
        return bias

    def normalize(self, x: Tensor) -> Tensor:
        """The detached, length-normalised input the layer actually sees."""
        x = x.detach()
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise InvalidValueError(
                "input shape", tuple(x.shape), f"(batch, {self.in_features}) for this FFDense"
            )
        return x * input_scale(x, self.norm, self.eps)

    def extra_loss(self, h: Tensor, num_pos: int) -> Tensor | None:
        """Hinton's peer normalisation, when ``peer_norm`` > 0.

        Each unit's running mean activity on positive data (momentum ``peer_momentum``) is
        pushed towards the layer's average, so no unit stays dead or always on: the penalty
        is ``peer_norm * mean((m_j - mean_k m_k)^2)``, zero when all units are equally active.
        """
        if self.peer_norm == 0:
            return None
        current = h[:num_pos].mean(dim=0)
        previous = self.peer_mean
        running = previous * self.peer_momentum + current * (1 - self.peer_momentum)
        previous.copy_(running.detach())
        penalty = (running - running.mean()).square().mean()
        return self.peer_norm * penalty

    def activate(self, pre: Tensor) -> Tensor:
        """The activation; in place when no gradient is needed (inference)."""
        if pre.requires_grad:
            h: Tensor = self.act(pre)
            return h
        return INPLACE_ACTIVATIONS[self.activation_name](pre)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.linear(self.normalize(x)))

    def forward_appended(self, x: Tensor, tails: Tensor) -> Tensor:
        """``forward(cat(x, tail))`` for every row of ``tails`` at once: ``(B, T, out)``.

        TryAll's shortcut: the input is an image with one of ``T`` label codes appended,
        so the image's share of the matmul (``W_x · x``) is computed once and each label
        adds its own column block ``W_t · tail``; the normalisation, which depends only on
        the lengths of ``x`` and ``tail``, is applied afterwards.
        """
        x = x.detach()
        width = x.shape[1] + tails.shape[1]
        if x.dim() != 2 or width != self.in_features:
            raise InvalidValueError(
                "input shape", (tuple(x.shape), tuple(tails.shape)), f"{self.in_features} features"
            )
        weight = self.linear.weight
        image_part = x @ weight[:, : x.shape[1]].t()  # (B, out)
        tail_part = tails @ weight[:, x.shape[1] :].t()  # (T, out)
        if self.norm == "none":
            scale = torch.ones(x.shape[0], tails.shape[0], dtype=x.dtype, device=x.device)
        else:
            squares = x.square().sum(1, keepdim=True) + tails.square().sum(1)  # (B, T)
            length = squares.sqrt()
            if self.norm == "rms":
                length = length / (width**0.5)
            scale = (length + self.eps).reciprocal()
        pre = image_part.unsqueeze(1) + tail_part.unsqueeze(0)
        pre = pre.mul_(scale.unsqueeze(2)) if not pre.requires_grad else pre * scale.unsqueeze(2)
        if self.linear.bias is not None:
            pre = pre.add_(self.linear.bias) if not pre.requires_grad else pre + self.linear.bias
        return self.activate(pre)

    def extra_repr(self) -> str:
        direction = "maximise" if self.maximise else "minimise"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"activation={self.activation_name}, norm={self.norm}, "
            f"threshold={self.threshold:g}, {direction}"
        )


def ffdense(
    in_features: int,
    out_features: int,
    *,
    bias: bool = True,
    activation: str = "relu",
    norm: str = "rms",
    goodness: str = "sum-squares",
    loss: str = "softplus-threshold",
    threshold: float | None = None,
    maximise: bool = True,
    optimizer: str = "adam",
    lr: float = 3e-3,
    peer_norm: float = 0.0,
    peer_momentum: float = 0.9,
) -> FFDense:
    """Fully connected FF layer: act(W·x/‖x‖ + b) with its own optimizer."""
    return FFDense(
        in_features,
        out_features,
        bias=bias,
        activation=activation,
        norm=norm,
        goodness=goodness,
        loss=loss,
        threshold=threshold,
        maximise=maximise,
        optimizer=optimizer,
        lr=lr,
        peer_norm=peer_norm,
        peer_momentum=peer_momentum,
    )


FFLinear = FFDense


@hookimpl
def fflib_register_layers(register: Register) -> None:
    register("ffdense", ffdense, aliases=["fflinear"])
