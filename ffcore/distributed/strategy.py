"""What the trainer asks of a run that several processes train (``TrainingRun.parallel``).

The training loop (:func:`ffcore.training.train`) stays the one-process loop: every rank
runs it over the same batches in the same order. Where several processes differ from
one, the loop calls the run's :class:`ParallelTraining` instead: to train a batch (its
share of it, or its pipeline stage), to agree on stopping and on the end-of-epoch checks,
to add up the loss and to evaluate. :class:`~ffcore.distributed.DataParallel` and
:class:`~ffcore.distributed.LayerPipeline` implement it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from torch import Tensor, nn

if TYPE_CHECKING:
    from ffcore.distributed.environment import Session
    from ffcore.interfaces import Batch, NegativeSampler, Probe, Split
    from ffcore.signals import StopRequests
    from ffcore.training import TrainingRun


class ParallelTraining(Protocol):
    """A run's parallel layout, as the trainer sees it."""

    #: ``"data"`` or ``"layers"``.
    mode: str
    #: The process group the run trains on.
    session: Session
    rank: int
    world_size: int
    #: Whether this rank holds every layer's current weights (every data-parallel rank
    #: does; a pipeline stage holds its own layers only).
    whole_model: bool
    #: Whether this rank trains the parameters outside the FF layers (a read-out).
    owns_readout: bool
    #: Which copy of its layers this rank holds: 0 for the first (data parallel: the
    #: rank; a pipeline: its column in the 2-D layout). Copies hold the same weights, so
    #: what one reports (traces of its steps) the others need not.
    replica: int

    def start(self, run: TrainingRun) -> None:
        """Training is about to start (after the trainer configured the layers)."""
        ...

    def stop_requests(self) -> StopRequests:
        """What records SIGINT/SIGTERM while the epochs run."""
        ...

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """This rank's part of training on the global ``batch``; its loss (detached)."""
        ...

    def agreed_stop(self, step: int, signum: int | None) -> int | None:
        """After batch ``step``: the signal every rank agreed to stop on, if any."""
        ...

    def total_loss(self, loss_sum: Tensor) -> Tensor:
        """The run's loss summed over the batches so far, from this rank's ``loss_sum``."""
        ...

    def agree(self, check: Callable[[], None]) -> None:
        """Run an end-of-epoch check so that it fails on every rank or on none."""
        ...

    def evaluate(self, model: nn.Module, probe: Probe, split: Split, *, precision: str) -> float:
        """Accuracy on ``split``, the same figure on every rank."""
        ...

    def finish(self) -> None:
        """Training stopped (finished or interrupted): settle what is still in flight."""
        ...
