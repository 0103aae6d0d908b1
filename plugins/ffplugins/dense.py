"""FFDense (alias FFLinear): a fully connected Forward-Forward layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore import create_goodness, create_loss, hookimpl
from ffcore.errors import InvalidValueError
from ffcore.hookspecs import Register
from ffcore.interfaces import (
    FFLayer,
    FFLoss,
    GoodnessFunction,
    LayerStepResult,
    resolve_threshold,
)
from ffcore.optim import make_optimizer
from ffcore.precision import cast_back, full_precision
from ffplugins.fused import activation_goodness, fused_goodness_scale

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


class _TiledLinear(torch.autograd.Function):
    """``cat(x.repeat(k, 1), codes) @ weight.t()`` without repeating ``x``: ``(k*B, out)``.

    ``image_part`` is ``x @ weight[:, :d].t()``, computed beforehand without a gradient.
    The backward pass writes ``weight``'s gradient in one tensor: the image columns from
    a ``B``-row matmul (the ``k`` copies' gradients summed first), the code columns from
    ``codes``. Neither ``x`` nor ``codes`` gets a gradient (FF inputs are detached).

    Under mixed precision the codes' product and the output stay in the weight's dtype
    (the code carries the label, a small part of the sum); the image columns' gradient
    runs in the autocast dtype, as the forward product did.
    """

    @staticmethod
    def forward(x: Tensor, codes: Tensor, weight: Tensor, image_part: Tensor) -> Tensor:
        batch = x.shape[0]
        tail_part = full_precision_product(codes, weight[:, x.shape[1] :])
        tiled = tail_part.view(-1, batch, tail_part.shape[1]).add_(image_part)
        return tiled.view(codes.shape[0], -1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x, codes = inputs[0], inputs[1]
        ctx.save_for_backward(x, codes)
        device = x.device.type
        ctx.product_dtype = (
            torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        )

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor, None]:
        x, codes = ctx.saved_tensors
        batch, width = x.shape
        grad_weight = grad.new_empty(grad.shape[1], width + codes.shape[1])
        image_grad = grad.view(-1, batch, grad.shape[1]).sum(0)
        if ctx.product_dtype == grad.dtype:
            torch.mm(image_grad.t(), x, out=grad_weight[:, :width])
        else:  # the product the forward pass ran in bfloat16, the same way back
            product = image_grad.t().to(ctx.product_dtype) @ x.to(ctx.product_dtype)
            grad_weight[:, :width] = product
        # (codes^T · grad)^T: the long side of the product in rows is half the time of
        # grad^T · codes at these shapes (2000x256 by 256x10)
        grad_weight[:, width:] = (codes.t() @ grad).t()
        return None, None, grad_weight, None


def full_precision_product(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.t()`` in ``weight``'s dtype, even under autocast (for small products
    whose result must not be rounded to bfloat16, like a label code's)."""
    with full_precision(x.device):
        return x.to(weight.dtype) @ weight.t()


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
    #: The activations and goodness of the last differentiable forward pass, when fused.
    _fused_goodness: tuple[Tensor, Tensor] | None = None

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

    def fused_goodness_scale(self) -> float | None:
        """``c`` when this layer's goodness is ``c · Σ h²`` and its activation ``relu`` or
        ``identity``: training then computes activation and goodness in one fused step
        (:mod:`ffplugins.fused`); ``None`` otherwise."""
        return fused_goodness_scale(self.activation_name, self.goodness_fn, self.out_features)

    def train_joint(self, x: Tensor, num_pos: int) -> LayerStepResult:
        """``update(self(x), num_pos)``, with the goodness the fused step computed.

        The forward pass runs through ``self(x)`` as usual (module hooks fire); when the
        activation and goodness can be fused (:meth:`fused_goodness_scale`), it computes
        the goodness alongside the activations and :meth:`update` takes it from there.
        """
        h = self(x)
        return self.update(h, num_pos, goodness=self._take_goodness(h))

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
        pre = cast_back(self.linear(self.normalize(x)), self.linear.weight)
        factor = self.fused_goodness_scale() if pre.requires_grad else None
        if factor is None:
            return self.activate(pre)
        h, g = activation_goodness(pre, None, None, factor=factor, activation=self.activation_name)
        self._fused_goodness = (h, g)  # for train_joint, if h reaches it unchanged
        return h

    def _take_goodness(self, h: Tensor) -> Tensor | None:
        """The goodness the last forward pass computed with ``h``, or ``None`` (then the
        goodness function computes it: also when a forward hook replaced the output)."""
        pending, self._fused_goodness = self._fused_goodness, None
        return pending[1] if pending is not None and pending[0] is h else None

    def image_drive(self, x: Tensor) -> Tensor:
        """``W_x · x`` (no gradient): the image's share of the pre-activation, ``(B, out)``.

        For inputs made of an image ``x`` with a label code appended, this part is the same
        for every label; :meth:`forward_appended` and :meth:`forward_tiled` accept it
        precomputed, so a network can compute it once per batch while the weights stay put.
        """
        return self._image_part(self._check_appended(x, None), None)

    def forward_appended(self, x: Tensor, tails: Tensor, drive: Tensor | None = None) -> Tensor:
        """``forward(cat(x, tail))`` for every row of ``tails`` at once: ``(B, T, out)``.

        TryAll's shortcut: the input is an image with one of ``T`` label codes appended,
        so the image's share of the matmul (``W_x · x``, or ``drive`` when given) is
        computed once and each label adds its own column block ``W_t · tail``; the
        normalisation, which depends only on the lengths of ``x`` and ``tail``, is applied
        afterwards. A given ``drive`` is a constant to autograd (it is meant for inference
        and negative sampling); without it the output is differentiable as usual.
        """
        x = self._check_appended(x, tails.shape[1])
        weight = self.linear.weight
        if drive is None:
            image_part = cast_back(x @ weight[:, : x.shape[1]].t(), weight).unsqueeze(1)
        else:
            image_part = self._image_part(x, drive).unsqueeze(1)  # (B, 1, out)
        tail_part = full_precision_product(tails, weight[:, x.shape[1] :]).unsqueeze(0)
        scale = self._appended_scale(x.square().sum(1, keepdim=True), tails.square().sum(1))
        return self._finish(image_part + tail_part, scale.unsqueeze(2))

    def forward_tiled(self, x: Tensor, tails: Tensor, drive: Tensor | None = None) -> Tensor:
        """``forward(cat(x.repeat(k, 1), tails))`` for ``tails`` of ``k * B`` rows: ``(k*B, out)``.

        The training shortcut for label-embedding nets: positives and negatives that are
        the same images with different labels (row ``r`` pairs image ``r % B`` with
        ``tails[r]``). ``W_x · x`` is computed once for the ``k`` copies, in the forward
        pass and in the weight gradient, which then costs a ``B``-row matmul, not ``k*B``.
        ``drive`` is ``W_x · x`` computed earlier with the current weights (see
        :meth:`image_drive`); the gradient still reaches ``W_x``.
        """
        return self._finish(*self._tiled_product(x, tails, drive))

    def train_tiled(
        self, x: Tensor, tails: Tensor, num_pos: int, drive: Tensor | None = None
    ) -> LayerStepResult:
        """``update(forward_tiled(x, tails, drive), num_pos)``, fused as in :meth:`train_joint`."""
        raw, scale = self._tiled_product(x, tails, drive)
        factor = self.fused_goodness_scale()
        if factor is None:
            return self.update(self._finish(raw, scale), num_pos)
        h, g = activation_goodness(
            raw, scale, self.linear.bias, factor=factor, activation=self.activation_name
        )
        return self.update(h, num_pos, goodness=g)

    def _tiled_product(
        self, x: Tensor, tails: Tensor, drive: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward_tiled`'s unnormalised product ``(k*B, out)`` and row scales."""
        x = self._check_appended(x, tails.shape[1])
        batch, copies = x.shape[0], tails.shape[0] // max(1, x.shape[0])
        if copies * batch != tails.shape[0]:
            raise InvalidValueError(
                "label codes", tuple(tails.shape), f"a multiple of the {batch} images in rows"
            )
        image_part = self._image_part(x, drive)
        raw = _TiledLinear.apply(x, tails, self.linear.weight, image_part)
        image_squares = x.square().sum(1).repeat(copies)
        scale = self._appended_scale(image_squares, tails.square().sum(1)).unsqueeze(1)
        return raw, scale

    def _check_appended(self, x: Tensor, tail_width: int | None) -> Tensor:
        """``x`` detached, after checking that an image of its width and a code of
        ``tail_width`` (``None``: any code) fill the layer's input."""
        x = x.detach()
        code_width = self.in_features - x.shape[1] if x.dim() == 2 else 0
        if code_width < 1 or (tail_width is not None and tail_width != code_width):
            raise InvalidValueError(
                "input shape",
                (tuple(x.shape), tail_width),
                f"an image and a code of {self.in_features} features together",
            )
        return x

    def _image_part(self, x: Tensor, drive: Tensor | None) -> Tensor:
        """``W_x · x`` without a gradient: ``drive`` after checking its shape, or computed."""
        if drive is None:
            with torch.no_grad():
                weight = self.linear.weight
                return cast_back(x @ weight[:, : x.shape[1]].t(), weight)
        if drive.shape != (x.shape[0], self.out_features):
            raise InvalidValueError(
                "drive", tuple(drive.shape), f"({x.shape[0]}, {self.out_features}): W_x · x"
            )
        return drive.detach()

    def _appended_scale(self, image_squares: Tensor, tail_squares: Tensor) -> Tensor:
        """The normalising factor for inputs whose parts have these squared lengths."""
        squares = image_squares + tail_squares  # broadcasts
        if self.norm == "none":
            return torch.ones_like(squares)
        length = squares.sqrt()
        if self.norm == "rms":
            length = length / (self.in_features**0.5)
        scale: Tensor = (length + self.eps).reciprocal()
        return scale

    def _finish(self, pre: Tensor, scale: Tensor) -> Tensor:
        """Scale, bias and activation of an unnormalised pre-activation (in place if no grad)."""
        inplace = not pre.requires_grad
        pre = pre.mul_(scale) if inplace else pre * scale
        if self.linear.bias is not None:
            pre = pre.add_(self.linear.bias) if inplace else pre + self.linear.bias
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
