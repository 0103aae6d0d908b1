"""Negative samplers: random wrong label, every wrong label, the hardest wrong label, and
wrong labels picked by the read-out's neutral-label pass (Hinton's)."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from ffcore.interfaces import (
    Batch,
    Classifier,
    FFModel,
    LabelScorer,
    NegativeBatch,
    NegativeSampler,
    require,
)
from ffcore.layers import number

HARD_NEEDS = (
    "negatives 'hard' needs a model that scores labels; {model} does not: " "use --negatives random"
)
NEUTRAL_NEEDS = (
    "negatives 'neutral' needs a model with a classifier read-out; {model} has none: "
    "use --model ffc, or --negatives hard"
)


def random_wrong_labels(y: Tensor, num_classes: int) -> Tensor:
    """A uniformly drawn label different from each true label."""
    offset = torch.randint(1, num_classes, y.shape, device=y.device)
    return (y + offset) % num_classes


class RandomWrongLabel(NegativeSampler):
    """The real input with one uniformly drawn wrong label."""

    uses_model = False

    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        return NegativeBatch.relabelled(batch, random_wrong_labels(batch.y, model.num_classes))


class InverseLabels(NegativeSampler):
    """The real input with every wrong label: ``num_classes - 1`` negatives per positive."""

    uses_model = False

    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        num_classes, y = model.num_classes, batch.y
        offsets = torch.arange(1, num_classes, device=y.device)
        wrong = (y.unsqueeze(1) + offsets.unsqueeze(0)) % num_classes
        x = batch.x.repeat_interleave(num_classes - 1, dim=0)
        return NegativeBatch(x=x, y=wrong.reshape(-1), same_inputs=True)


def pick_wrong_labels(scores: Tensor, y: Tensor, temperature: float) -> Tensor:
    """The highest-scoring wrong label (``temperature == 0``) or one drawn by softmax."""
    scores = scores.float().scatter(1, y.unsqueeze(1), float("-inf"))
    if temperature > 0:
        probs = torch.softmax(scores / temperature, dim=1)
        return torch.multinomial(probs, 1).squeeze(1)
    return scores.argmax(dim=1)


class ScoredWrongLabel(NegativeSampler):
    """A wrong label picked from the model's scores for every label (see ``scores``)."""

    def __init__(self, temperature: float) -> None:
        self.temperature = number("temperature", temperature, low=0, expected="a number >= 0")

    @abstractmethod
    def scores(self, batch: Batch, model: FFModel) -> Tensor:
        """``(B, num_classes)``: how strongly the model believes each label."""

    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        with torch.no_grad():
            scores = self.scores(batch, model)
        return NegativeBatch.relabelled(batch, pick_wrong_labels(scores, batch.y, self.temperature))


class HardestWrongLabel(ScoredWrongLabel):
    """The wrong label the model currently scores highest (FFLib 0.3's HIGHEST_INCORRECT).

    ``temperature > 0`` samples wrong labels in proportion to ``softmax(score / T)``
    instead of taking the maximum, as Hinton does.
    """

    def __init__(self, temperature: float = 0.0) -> None:
        super().__init__(temperature)

    def scores(self, batch: Batch, model: FFModel) -> Tensor:
        return require(model, LabelScorer, HARD_NEEDS).goodness_per_label(batch)


class NeutralPassWrongLabel(ScoredWrongLabel):
    """Wrong labels drawn from the read-out's predictions for a neutral-label pass (Hinton's).

    One forward pass with the all-zero label gives the read-out's class logits (FF+C's
    classifier); a wrong label is drawn in proportion to ``softmax(logits / T)`` over the
    wrong labels (``temperature == 0``: the most probable wrong label). It costs one pass
    instead of the ``num_classes`` passes ``hard`` needs to score every label.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__(temperature)

    def scores(self, batch: Batch, model: FFModel) -> Tensor:
        return require(model, Classifier, NEUTRAL_NEEDS).logits(batch)


def random() -> NegativeSampler:
    """The real input with a uniformly drawn wrong label."""
    return RandomWrongLabel()


def inverse() -> NegativeSampler:
    """The real input with every wrong label (num_classes - 1 negatives each)."""
    return InverseLabels()


def hard(temperature: float = 0.0) -> NegativeSampler:
    """The wrong label the network scores highest (sampled by softmax if temperature > 0)."""
    return HardestWrongLabel(temperature=temperature)


def neutral(temperature: float = 1.0) -> NegativeSampler:
    """Wrong labels drawn from the classifier read-out's neutral-label pass (Hinton's)."""
    return NeutralPassWrongLabel(temperature=temperature)
