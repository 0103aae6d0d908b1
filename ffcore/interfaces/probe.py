"""Probes turn a trained network into class predictions."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class Probe(ABC):
    """Predicts labels from a model; checks once that the model can be probed this way."""

    @abstractmethod
    def check(self, model: nn.Module) -> None:
        """Raise :class:`~ffcore.errors.FFLibError` if this probe cannot read ``model``."""

    @abstractmethod
    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Predicted labels, shape ``(B,)``."""
