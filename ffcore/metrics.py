"""Per-class metrics: predictions on a split, the confusion matrix, precision and recall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ffcore.data import iterate_batches
from ffcore.errors import FFLibError
from ffcore.eval_mode import eval_mode
from ffcore.interfaces import Probe, Split
from ffcore.precision import autocast

#: Samples per forward pass, as :func:`ffcore.training.evaluate` uses, so the predictions
#: (and so the accuracy) are the ones it counts.
BATCH_SIZE = 1000


@torch.no_grad()
def predict_split(
    model: nn.Module,
    probe: Probe,
    split: Split,
    batch_size: int = BATCH_SIZE,
    *,
    precision: str = "fp32",
) -> Tensor:
    """``probe``'s predicted label for every sample of ``split``, batched as ``evaluate``."""
    if len(split) == 0:
        raise FFLibError("cannot evaluate on an empty split")
    parts: list[Tensor] = []
    with eval_mode(model), autocast(split.x.device, precision):
        for x, _ in iterate_batches(split, batch_size, shuffle=False):
            parts.append(probe.predict(model, x))
    return torch.cat(parts)


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    """``(num_classes, num_classes)`` counts: row = true label, column = predicted label."""
    index = y_true.long().cpu() * num_classes + y_pred.long().cpu()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


@dataclass(frozen=True)
class ClassReport:
    """One class's numbers. ``recall`` is the class's accuracy: the fraction of its
    samples classified right; ``precision`` the fraction right of those predicted as it
    (``None`` when none were)."""

    label: int
    name: str
    support: int
    predicted: int
    precision: float | None
    recall: float | None
    f1: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, ``name`` as ``class``."""
        values = asdict(self)
        values["class"] = values.pop("name")
        return values


def per_class(confusion: Tensor, classes: Sequence[str]) -> list[ClassReport]:
    """Support, precision, recall (the class's accuracy) and F1 of every class."""
    reports: list[ClassReport] = []
    for label, name in enumerate(classes):
        correct = int(confusion[label, label])
        support = int(confusion[label].sum())
        predicted = int(confusion[:, label].sum())
        precision = correct / predicted if predicted else None
        recall = correct / support if support else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        reports.append(ClassReport(label, name, support, predicted, precision, recall, f1))
    return reports


def accuracy(confusion: Tensor) -> float:
    """The fraction of samples on the diagonal."""
    total = int(confusion.sum())
    return int(confusion.diagonal().sum()) / total if total else 0.0
