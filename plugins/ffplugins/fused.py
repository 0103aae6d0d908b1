"""A dense layer's scale, bias, activation and square-sum goodness in one autograd step.

Unfused, a training step runs them as separate operations, each a pass over the
``(B, out)`` activations with its own temporary, and autograd walks back through every
one: the goodness' square, the activation's mask, the bias' sum, the scale's product.
For ``relu`` (and ``identity``) with a goodness of ``c · Σ h²`` the gradient collapses:
``∂g/∂pre = 2c · h``, because ``h`` is already zero wherever ``relu`` masked ``pre``. So
the backward pass is one product per element and one matrix-vector product for the bias.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ffcore.errors import InvalidValueError
from ffcore.interfaces import GoodnessFunction
from ffcore.precision import full_precision

#: Activations whose gradient times ``2c · h`` needs no mask of its own.
FUSED_ACTIVATIONS = ("relu", "identity")


def fused_goodness_scale(
    activation: str, goodness: GoodnessFunction, num_features: int
) -> float | None:
    """``c`` when ``activation`` and ``goodness`` (``c · Σ h²``) can be fused, else ``None``."""
    if activation not in FUSED_ACTIVATIONS:
        return None
    return goodness.square_sum_scale(num_features)


def _scale_and_shift(raw: Tensor, scale: Tensor | None, bias: Tensor | None) -> Tensor | None:
    """``raw · scale + bias`` in one new tensor; ``None`` when there is neither."""
    if scale is not None and bias is not None:
        return torch.addcmul(bias, raw, scale)
    if scale is not None:
        return raw * scale
    if bias is not None:
        return raw + bias
    return None


class _ActivationGoodness(torch.autograd.Function):
    """``h = act(raw · scale + bias)`` and ``g = c · Σ_j h_j²`` per row, fused."""

    @staticmethod
    def forward(
        raw: Tensor, scale: Tensor | None, bias: Tensor | None, factor: float, relu: bool
    ) -> tuple[Tensor, Tensor]:
        pre = _scale_and_shift(raw, scale, bias)
        if pre is None:  # one pass, and never ``raw`` itself
            h = torch.relu(raw) if relu else raw.clone()
        else:
            h = pre.relu_() if relu else pre
        # one reduction pass, no squared temporary (float32: h is the weights' dtype)
        g = torch.linalg.vector_norm(h, dim=1).square_()
        if factor != 1.0:
            g = g.mul_(factor)
        return h, g

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
        _, scale, bias, factor, relu = inputs
        ctx.save_for_backward(output[0], scale)
        ctx.factor, ctx.relu, ctx.has_bias = factor, relu, bias is not None
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(
        ctx: Any, grad_h: Tensor | None, grad_g: Tensor | None
    ) -> tuple[Tensor | None, None, Tensor | None, None, None]:
        h, scale = ctx.saved_tensors
        coef = (
            torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
            if grad_g is None
            else grad_g * (2.0 * ctx.factor)
        )
        if grad_h is None:  # the usual case: only the goodness feeds the loss
            row_factor = coef if scale is None else coef * scale.squeeze(1)
            grad_raw = h * row_factor.unsqueeze(1)
            grad_bias = None
            if ctx.has_bias and ctx.needs_input_grad[2]:
                with full_precision(h.device):  # a float32 matrix-vector product
                    grad_bias = coef @ h
            return grad_raw, None, grad_bias, None, None
        # a loss on h itself too (peer normalisation): the activation's mask is needed
        grad_pre = h * coef.unsqueeze(1)
        grad_pre += grad_h * (h > 0) if ctx.relu else grad_h
        grad_bias = grad_pre.sum(0) if ctx.has_bias else None
        grad_raw = grad_pre if scale is None else grad_pre * scale
        return grad_raw, None, grad_bias, None, None


def activation_goodness(
    raw: Tensor,
    scale: Tensor | None,
    bias: Tensor | None,
    *,
    factor: float,
    activation: str,
) -> tuple[Tensor, Tensor]:
    """``(h, g)``: ``h = act(raw · scale + bias)``, ``g = factor · Σ h²`` per row.

    ``raw`` is ``(B, out)``, ``scale`` a per-row factor ``(B, 1)`` or ``None``, ``bias``
    ``(out,)`` or ``None``; ``activation`` is one of :data:`FUSED_ACTIVATIONS`. Both
    outputs are differentiable (with respect to ``raw`` and ``bias``); the backward pass
    is cheapest when only ``g`` feeds the loss.
    """
    if activation not in FUSED_ACTIVATIONS:
        raise InvalidValueError("activation", activation, f"one of {', '.join(FUSED_ACTIVATIONS)}")
    h, g = _ActivationGoodness.apply(raw, scale, bias, factor, activation == "relu")
    return h, g
