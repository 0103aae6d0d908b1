"""Counting correct predictions on a share of a split (what ranks add up)."""

from __future__ import annotations

import torch
from torch import nn

from ffcore.data import iterate_batches
from ffcore.eval_mode import eval_mode
from ffcore.interfaces import Probe, Split
from ffcore.precision import autocast

#: Samples per forward pass when evaluating (the trainer's figure).
EVAL_BATCH_SIZE = 1000


@torch.no_grad()
def correct_predictions(
    model: nn.Module,
    probe: Probe,
    split: Split,
    *,
    precision: str = "fp32",
    batch_size: int = EVAL_BATCH_SIZE,
) -> int:
    """How many of ``split``'s samples ``probe`` predicts right (0 for an empty split)."""
    if len(split) == 0:
        return 0
    correct = torch.zeros((), dtype=torch.long, device=split.y.device)
    with eval_mode(model), autocast(split.x.device, precision):
        for x, y in iterate_batches(split, batch_size, shuffle=False):
            correct += (probe.predict(model, x) == y).sum()
    return int(correct.item())
