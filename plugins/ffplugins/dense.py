"""FFDense (alias FFLinear): a fully connected Forward-Forward layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer, LayerStepResult, Objective, ObjectiveOptions
from ffcore.layers import (
    ACTIVATIONS,
    INPLACE_ACTIVATIONS,
    NORMS,
    calls_hooks,
    choice,
    input_scale,
    layer_factory,
    number,
    positive_int,
)
from ffcore.precision import cast_back, full_precision
from ffplugins.fused import activation_goodness, fused_goodness_scale

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
        bias: whether the layer adds a bias.
        activation: ``relu`` (default), ``gelu``, ``leaky-relu``, ``tanh``, ``sigmoid``,
            ``identity``.
        norm: input normalisation, ``rms`` (default), ``l2`` (the seed's) or ``none``.
        peer_norm: the weight of Hinton's peer normalisation (see :meth:`extra_loss`);
            ``0`` turns it off.
        peer_momentum: the momentum of the units' running mean activity it reads.
        objective: goodness, loss, threshold, direction, optimizer and learning rate
            (:class:`~ffcore.interfaces.Objective`); its fields may also be given one by
            one (``goodness="mean-squares"``, ``lr=0.01``...), replacing its own.
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
        peer_norm: float = 0.0,
        peer_momentum: float = 0.9,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        objective: Objective | None = None,
        **options: Unpack[ObjectiveOptions],
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.activation_name = choice("activation", activation, ACTIVATIONS)
        self.norm = choice("norm", norm, NORMS)
        self.peer_norm = number(
            "peer_norm", peer_norm, low=0, expected="a weight >= 0 (0 turns it off)"
        )
        self.peer_momentum = number("peer_momentum", peer_momentum, low=0, high=1, high_open=True)
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.eps = eps
        #: Running mean activity of each unit on positive data (for peer normalisation);
        #: saved with the weights only when peer normalisation is on.
        self.register_buffer(
            "peer_mean",
            torch.zeros(out_features, device=device, dtype=dtype),
            persistent=self.peer_norm > 0,
        )
        self.set_objective(Objective.of(objective, **options), out_features)

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
        """``update(self(x), num_pos)``, fused when it can be.

        When activation and goodness can be fused (:meth:`fused_goodness_scale`) and no
        hook watches the layer's call (so ``self(x)`` is ``forward(x)``, see
        :func:`~ffcore.layers.calls_hooks`), the goodness is computed together with the
        activations (:meth:`forward_with_goodness`); otherwise ``self(x)`` runs, hooks and
        all, and the goodness function reads what it returned.
        """
        factor = self.fused_goodness_scale()
        if factor is None or calls_hooks(self):
            return self.update(self(x), num_pos)
        h, g = self.forward_with_goodness(x, factor)
        return self.update(h, num_pos, goodness=g)

    def forward_with_goodness(self, x: Tensor, factor: float) -> tuple[Tensor, Tensor]:
        """``forward(x)`` and its goodness ``factor · Σ h²`` in one fused, differentiable
        step (activation ``relu`` or ``identity``; see :mod:`ffplugins.fused`)."""
        pre = cast_back(self.linear(self.normalize(x)), self.linear.weight)
        return activation_goodness(pre, None, None, factor=factor, activation=self.activation_name)

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
        return self.activate(cast_back(self.linear(self.normalize(x)), self.linear.weight))

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

    def forward_tiled(
        self, x: Tensor, tails: Tensor, drive: Tensor | None = None, order: Tensor | None = None
    ) -> Tensor:
        """``forward(cat(x.repeat(k, 1), tails))`` for ``tails`` of ``k * B`` rows: ``(k*B, out)``.

        The training shortcut for label-embedding nets: positives and negatives that are
        the same images with different labels (row ``r`` pairs image ``r % B`` with
        ``tails[r]``). ``W_x · x`` is computed once for the ``k`` copies, in the forward
        pass and in the weight gradient, which then costs a ``B``-row matmul, not ``k*B``.
        ``drive`` is ``W_x · x`` computed earlier with the current weights (see
        :meth:`image_drive`); the gradient still reaches ``W_x``. ``order`` (row indices)
        returns the rows in another order, ``rows[order]``: a network whose negatives are
        each image's ``k`` wrong labels side by side (sample-major) tiles them copy by copy
        for the shared product and takes them back in its own order.
        """
        return self._finish(*self._tiled_product(x, tails, drive, order))

    def train_tiled(
        self,
        x: Tensor,
        tails: Tensor,
        num_pos: int,
        drive: Tensor | None = None,
        order: Tensor | None = None,
    ) -> LayerStepResult:
        """``update(forward_tiled(x, tails, drive, order), num_pos)``, fused as in
        :meth:`train_joint`."""
        raw, scale = self._tiled_product(x, tails, drive, order)
        factor = self.fused_goodness_scale()
        if factor is None:
            return self.update(self._finish(raw, scale), num_pos)
        h, g = activation_goodness(
            raw, scale, self.linear.bias, factor=factor, activation=self.activation_name
        )
        return self.update(h, num_pos, goodness=g)

    def _tiled_product(
        self, x: Tensor, tails: Tensor, drive: Tensor | None, order: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward_tiled`'s unnormalised product ``(k*B, out)`` and row scales, the
        rows in ``order`` when given."""
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
        if order is not None:
            if order.shape != (tails.shape[0],):
                raise InvalidValueError(
                    "order", tuple(order.shape), f"({tails.shape[0]},): one index per row"
                )
            raw, scale = raw[order], scale[order]
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


ffdense = layer_factory(
    FFDense, "Fully connected FF layer: act(W·x/‖x‖ + b) with its own optimizer."
)

FFLinear = FFDense
