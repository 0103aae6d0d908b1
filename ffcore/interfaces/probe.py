"""Probes turn a trained network into class predictions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn

from ffcore.errors import FFLibError


class Probe(ABC):
    """Predicts labels from a model; checks once that the model can be probed this way.

    A probe that predicts the best of per-label scores also gives the scores themselves
    (:meth:`scores`): what ``predict_proba``, ``ff predict`` and exported graphs read.
    """

    #: What :meth:`scores` returns: ``"goodness"`` (each label's summed goodness, higher
    #: is better), ``"logits"`` (a read-out's class logits), or ``""``: no scores.
    score_kind: ClassVar[str] = ""

    @abstractmethod
    def check(self, model: nn.Module) -> None:
        """Raise :class:`~ffcore.errors.FFLibError` if this probe cannot read ``model``."""

    @abstractmethod
    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Predicted labels, shape ``(B,)``."""

    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        """Per-label scores ``(B, num_classes)`` whose argmax :meth:`predict` returns.

        Probes that predict some other way need not implement it; they then cannot give
        probabilities or be exported.
        """
        raise FFLibError(
            f"probe {type(self).__name__} gives no per-label scores, only predictions: "
            "use a probe that scores labels (tryall, classifier)"
        )


class ScoringProbe(Probe):
    """A probe that predicts the best of its per-label scores: a subclass gives
    :meth:`scores` (and :meth:`check`), and :meth:`predict` is their argmax, so the two
    can never disagree."""

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        return self.scores(model, x).argmax(dim=1)

    @abstractmethod
    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        """Per-label scores ``(B, num_classes)``, higher is better."""
