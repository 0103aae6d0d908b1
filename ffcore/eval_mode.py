"""Running a model in evaluation mode for a while, then in the mode it was in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in evaluation mode inside the block, and back in the mode it was in after
    it, also when the block raises: evaluating in the middle of training must not leave
    dropout, batch statistics or a layer's training-only caches switched off."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
