"""Built-in FF losses: softplus-threshold (Hinton) and SymBa (Lee & Song 2023)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLoss


def _pair_up(g_pos: Tensor, g_neg: Tensor) -> Tensor:
    """Repeat each positive goodness once per negative of the same sample."""
    positives, negatives = g_pos.shape[0], g_neg.shape[0]
    if positives == 0 or negatives % positives:
        raise InvalidValueError(
            "negative batch size", negatives, f"a positive multiple of the {positives} positives"
        )
    per_positive = negatives // positives
    return g_pos if per_positive == 1 else g_pos.repeat_interleave(per_positive)


class SoftplusThreshold(FFLoss):
    """``softplus(θ - g_pos)`` + ``softplus(g_neg - θ)``, each averaged.

    ``softplus`` is evaluated stably (no ``log(1 + exp(x))`` overflow), so the loss stays
    finite for any finite goodness.
    """

    def __call__(self, g_pos: Tensor, g_neg: Tensor, threshold: float) -> Tensor:
        return F.softplus(threshold - g_pos).mean() + F.softplus(g_neg - threshold).mean()


class SymBa(FFLoss):
    """SymBa: ``softplus(-α (g_pos - g_neg))`` over positive/negative pairs; no threshold."""

    uses_threshold = False

    def __init__(self, alpha: float = 4.0) -> None:
        if not alpha > 0:
            raise InvalidValueError("alpha", alpha, "a positive number")
        self.alpha = alpha

    def __call__(self, g_pos: Tensor, g_neg: Tensor, threshold: float) -> Tensor:
        return F.softplus(self.alpha * (g_neg - _pair_up(g_pos, g_neg))).mean()


def softplus_threshold() -> FFLoss:
    """Hinton's loss: positive goodness above the threshold, negative below."""
    return SoftplusThreshold()


def symba(alpha: float = 4.0) -> FFLoss:
    """SymBa (Lee & Song 2023): separate positive from negative goodness, no threshold."""
    return SymBa(alpha=alpha)
