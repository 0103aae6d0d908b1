"""Built-in goodness functions: sums and means of squared activity, and their negatives."""

from __future__ import annotations

import torch
from torch import Tensor

from ffcore.interfaces import GoodnessFunction

#: Activation dtypes whose goodness is computed in float32 (mixed precision hands them over).
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _sum_squares(h: Tensor) -> Tensor:
    flat = h.reshape(h.shape[0], -1)
    if flat.dtype in _LOW_PRECISION:
        # A bfloat16 sum near the threshold (the width) is off by several units: enough
        # to move the loss and to reorder TryAll's labels.
        flat = flat.float()
    if flat.requires_grad:
        return flat.square().sum(dim=1)
    # Inference: one reduction pass, no full-size temporary.
    norms: Tensor = torch.linalg.vector_norm(flat, dim=1)
    return norms.square()


class SumSquares(GoodnessFunction):
    """Sum of squared activities (Hinton 2022); threshold = number of units."""

    def __call__(self, h: Tensor) -> Tensor:
        return _sum_squares(h)

    def default_threshold(self, num_features: int) -> float:
        return float(num_features)

    def square_sum_scale(self, num_features: int) -> float | None:
        return 1.0


class MeanSquares(GoodnessFunction):
    """Mean of squared activities (the original FFLib's goodness)."""

    def __call__(self, h: Tensor) -> Tensor:
        return _sum_squares(h) / h[0].numel()

    def default_threshold(self, num_features: int) -> float:
        return 2.0

    def square_sum_scale(self, num_features: int) -> float | None:
        return 1.0 / num_features


class Negated(GoodnessFunction):
    """The negative of another goodness, for layers that minimise it."""

    def __init__(self, inner: GoodnessFunction) -> None:
        self.inner = inner

    def __call__(self, h: Tensor) -> Tensor:
        return -self.inner(h)

    def default_threshold(self, num_features: int) -> float:
        return -self.inner.default_threshold(num_features)

    def square_sum_scale(self, num_features: int) -> float | None:
        inner = self.inner.square_sum_scale(num_features)
        return None if inner is None else -inner


def sum_squares() -> GoodnessFunction:
    """Sum of squared activities (Hinton); default threshold: the layer width."""
    return SumSquares()


def mean_squares() -> GoodnessFunction:
    """Mean of squared activities (the original FFLib); default threshold 2."""
    return MeanSquares()


def neg_sum_squares() -> GoodnessFunction:
    """Negative sum of squares: low activity marks positive data."""
    return Negated(SumSquares())


def neg_mean_squares() -> GoodnessFunction:
    """Negative mean of squares: low activity marks positive data."""
    return Negated(MeanSquares())
