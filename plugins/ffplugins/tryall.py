"""TryAll: try every one-hot label and pick the one with the best total goodness."""

from __future__ import annotations

from torch import Tensor, nn

from ffcore.interfaces import LabelScorer, Probe, ScoringProbe, require

NEEDS = (
    "probe 'tryall' needs a model that scores labels (goodness_per_label); {model} does not: "
    "choose another --probe"
)


class TryAll(ScoringProbe):
    """Predicts ``argmax_c goodness(x, c)`` using the model's ``goodness_per_label``.

    Its scores are that goodness per label (signed: higher means more positive).
    """

    score_kind = "goodness"

    def check(self, model: nn.Module) -> None:
        require(model, LabelScorer, NEEDS)

    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        return require(model, LabelScorer, NEEDS).goodness_per_label(x)


def tryall() -> Probe:
    """Try every label; predict the one whose total goodness is best."""
    return TryAll()
