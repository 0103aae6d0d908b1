"""Goodness functions: a layer's activations (B, ...) -> one score per sample (B,)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class GoodnessFunction(ABC):
    """Maps activations of shape ``(B, ...)`` to goodness of shape ``(B,)``.

    Under mixed precision (``precision = "bf16"``) the activations may arrive in
    bfloat16; return the goodness in float32 all the same (the built-in functions do),
    since the loss and TryAll's comparison of labels need more than bfloat16's 8 bits.
    """

    @abstractmethod
    def __call__(self, h: Tensor) -> Tensor:
        """Goodness of each sample in the batch."""

    @abstractmethod
    def default_threshold(self, num_features: int) -> float:
        """The threshold that fits this goodness for a layer of ``num_features`` units.

        It makes goodness and threshold agree in scale: ``num_features`` for a sum of
        squares of unit-RMS activity, a constant for a mean.
        """

    def square_sum_scale(self, num_features: int) -> float | None:
        """``c`` when this goodness is ``c · Σ h²`` over a layer's ``num_features`` units,
        else ``None`` (the default).

        A layer may then compute the goodness together with its activation in one fused
        step, forward and backward (FFDense does, for ``relu`` and ``identity``), instead
        of calling this function on the activations. Only say so if it is exactly true.
        """
        return None
