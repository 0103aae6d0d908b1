"""Built-in FF losses: softplus-threshold (Hinton), SymBa (Lee & Song 2023) and the softmax
over each positive and its own negatives."""

from __future__ import annotations

import torch
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


def negatives_per_positive(g_pos: Tensor, g_neg: Tensor) -> Tensor:
    """``g_neg`` as ``(B, k)``: row ``i`` holds the goodness of sample ``i``'s own negatives.

    The layout is the one :class:`~ffcore.interfaces.FFLoss` documents (sample-major, the
    same for every sampler); a negative batch that is not ``k`` whole negatives per
    positive cannot be paired and is refused.
    """
    positives, negatives = g_pos.shape[0], g_neg.shape[0]
    if positives == 0 or negatives == 0 or negatives % positives:
        raise InvalidValueError(
            "negative batch size",
            negatives,
            f"the same number of negatives (at least one) for each of the {positives} positives",
        )
    return g_neg.reshape(positives, negatives // positives)


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


class GoodnessSoftmax(FFLoss):
    """Cross-entropy of ``α · [g_pos, g_neg_1 .. g_neg_k]`` with the positive as target.

    Each sample's goodness with its true label competes with its goodness with each of its
    own ``k`` negatives, as the labels compete at test time when the network picks the
    label of highest goodness; with every wrong label as negatives (``inverse``) the loss
    is the cross-entropy of the TryAll prediction itself. No threshold: only differences
    between a sample's goodnesses matter. ``α`` scales goodness into logits (mean-of-
    squares goodness of a normalised layer moves by fractions of one, hence the large
    default).
    """

    uses_threshold = False

    def __init__(self, alpha: float = 16.0) -> None:
        if not alpha > 0:
            raise InvalidValueError("alpha", alpha, "a positive number")
        self.alpha = alpha

    def __call__(self, g_pos: Tensor, g_neg: Tensor, threshold: float) -> Tensor:
        competing = torch.cat((g_pos.unsqueeze(1), negatives_per_positive(g_pos, g_neg)), 1)
        logits = self.alpha * competing.float()  # low-precision goodness: exact log-sum-exp
        target = torch.zeros(g_pos.shape[0], dtype=torch.long, device=g_pos.device)
        return F.cross_entropy(logits, target)


def softplus_threshold() -> FFLoss:
    """Hinton's loss: positive goodness above the threshold, negative below."""
    return SoftplusThreshold()


def symba(alpha: float = 4.0) -> FFLoss:
    """SymBa (Lee & Song 2023): separate positive from negative goodness, no threshold."""
    return SymBa(alpha=alpha)


def softmax(alpha: float = 16.0) -> FFLoss:
    """Cross-entropy over each sample's positive and own negatives' goodness (scaled by alpha)."""
    return GoodnessSoftmax(alpha=alpha)
