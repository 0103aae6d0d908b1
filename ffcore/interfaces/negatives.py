"""Negative samplers build the negative data an FF layer learns to reject."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class NegativeBatch:
    """Negative inputs and the labels that go with them.

    ``x`` has ``B * k`` rows for ``k`` negatives per positive, sample-major; for label-
    embedding nets ``x`` repeats the real inputs and ``y`` holds the wrong labels.
    """

    x: Tensor
    y: Tensor


class NegativeSampler(ABC):
    """Builds negatives from a batch ``(x, y)``; may ask the model (hard negatives)."""

    @abstractmethod
    def __call__(self, x: Tensor, y: Tensor, num_classes: int, model: nn.Module) -> NegativeBatch:
        """Negatives for positives ``x`` with labels ``y``. Draws from torch's global RNG."""
