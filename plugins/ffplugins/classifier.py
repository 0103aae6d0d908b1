"""The ``classifier`` probe: argmax of a model's own read-out logits."""

from __future__ import annotations

from torch import Tensor, nn

from ffcore.interfaces import Classifier, Probe, ScoringProbe, require

NEEDS = (
    "probe 'classifier' needs a model with a read-out (logits); {model} has none: "
    "use --probe tryall"
)


class ClassifierProbe(ScoringProbe):
    """Predicts ``argmax`` of ``model.logits(x)`` in one forward pass (no TryAll); its
    scores are those logits."""

    score_kind = "logits"

    def check(self, model: nn.Module) -> None:
        require(model, Classifier, NEEDS)

    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        return require(model, Classifier, NEEDS).logits(x)


def classifier() -> Probe:
    """Argmax of the model's own classifier logits (FF+C, backprop)."""
    return ClassifierProbe()
