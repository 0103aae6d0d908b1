"""Divergence that stays finite: a loss or weights that grow by orders of magnitude.

A learning rate far too high does not always produce NaN: with ``--lr 1e6`` the loss of
the digits recipe reaches 6e16 and the weights 1e8 times their initial size, yet every
number stays finite and the run used to end with exit 0. The rule here compares, at the
end of each epoch, the epoch's mean loss with the loss of the run's first batch, and each
weight's norm with its norm when training started. Healthy runs of every built-in model,
goodness, loss and recipe stay within about 10x of the first loss (FF losses may rise a
little while negatives get harder) and 11x of the initial norms; the limits sit three
orders of magnitude above that. The first loss costs one host sync per run; the norms one
per parameter per epoch, like the end-of-epoch NaN check.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ffcore.errors import DivergenceError

#: The epoch's mean loss may be at most this many times the first batch's (or 1).
LOSS_GROWTH_LIMIT = 1e4
#: A weight's norm may be at most this many times its norm at the start (or 1).
WEIGHT_GROWTH_LIMIT = 1e5


def loss_reference(loss: Tensor) -> float | None:
    """The loss a run's growth is measured against: its first finite batch loss."""
    value = float(loss)
    return abs(value) if math.isfinite(value) else None


@torch.no_grad()
def weight_norms(model: nn.Module) -> dict[str, float]:
    """Each parameter's Euclidean norm, fetched from the device in one transfer."""
    named = list(model.named_parameters())
    if not named:
        return {}
    norms = [torch.linalg.vector_norm(p.detach().float()).to(named[0][1].device) for _, p in named]
    values = torch.stack(norms).tolist()
    return {name: float(value) for (name, _), value in zip(named, values, strict=True)}


class GrowthGuard:
    """Raises :class:`DivergenceError` when loss or weights grow beyond the limits."""

    def __init__(self, model: nn.Module) -> None:
        self.start = {name: max(norm, 1.0) for name, norm in weight_norms(model).items()}

    def check(
        self, model: nn.Module, epoch: int, loss: float, reference: float | None, lr: str
    ) -> None:
        """After 0-based ``epoch`` with mean ``loss``: raise if anything exploded."""
        base = max(reference or 0.0, 1.0)
        if reference is not None and abs(loss) > LOSS_GROWTH_LIMIT * base:
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}: the loss grew from {reference:.3g} on "
                f"the first batch to {loss:.3g}, more than {LOSS_GROWTH_LIMIT:,.0f}-fold; lower "
                f"the learning rate{lr}"
            )
        for name, norm in weight_norms(model).items():
            start = self.start.get(name)
            if start is not None and norm > WEIGHT_GROWTH_LIMIT * start:
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}: the norm of parameter "
                    f"{name!r} grew from {start:.3g} to {norm:.3g}, more than "
                    f"{WEIGHT_GROWTH_LIMIT:,.0f}-fold; lower the learning rate{lr}"
                )
