"""FF losses: (positive goodness, negative goodness, threshold) -> scalar loss."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class FFLoss(ABC):
    """Pushes positive goodness up and negative goodness down.

    ``g_pos`` has shape ``(B,)``; ``g_neg`` has shape ``(B * k,)`` for ``k`` negatives per
    positive, sample-major (the negatives of sample ``i`` are rows ``i*k .. i*k+k-1``).
    Minimising layers pass negated goodness and threshold, so a loss only ever maximises.
    """

    #: Whether the loss reads ``threshold`` (SymBa, for one, does not).
    uses_threshold: bool = True

    @abstractmethod
    def __call__(self, g_pos: Tensor, g_neg: Tensor, threshold: float) -> Tensor:
        """The scalar loss for one batch."""
