"""Agreeing across ranks: when to stop, and sums of figures each rank holds a share of.

Stopping. Ctrl-C or SIGTERM reaches the launcher, which passes it on to every rank (and
a terminal's Ctrl-C reaches them directly too); a scheduler may signal one rank only.
Every rank must stop after the same batch, or the others would wait for it forever. So
each batch every rank casts a vote (the signal it received, or 0) in an asynchronous
all-reduce (max) on the control group, and reads the outcome of the vote cast ``lag``
batches earlier: every rank reads the same outcome at the same batch and stops there.
The lag keeps the vote off the critical path: in a pipeline the ranks work on different
batches at the same moment, and a synchronous vote would drain the pipeline every batch.
"""

from __future__ import annotations

from collections import deque
from types import FrameType

import torch
import torch.distributed as dist
from torch import Tensor

from ffcore.distributed.faults import communicating
from ffcore.signals import StopRequests


class RankStopRequests(StopRequests):
    """:class:`~ffcore.signals.StopRequests` for one of several processes: the first
    SIGINT/SIGTERM is recorded and repeats are ignored (once the run is saved, a signal
    still stops at once, as in one process).

    A terminal's Ctrl-C reaches the ranks and the launcher, which then passes its own
    signal on: a second signal is no request to hurry. The launcher kills whatever still
    runs after its shutdown timeout.
    """

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and not self._immediate:
            return  # a repeat, not a request to hurry
        super()._handle(signum, frame)


class StopVote:
    """Each batch's vote on stopping, read ``lag`` batches later (see the module doc)."""

    def __init__(self, group: dist.ProcessGroup, lag: int) -> None:
        self.group = group
        self.lag = lag
        self._pending: deque[tuple[int, Tensor, dist.Work]] = deque()
        self.decided: int | None = None

    def vote(self, step: int, signum: int | None) -> int | None:
        """Cast this rank's vote for ``step`` (``signum``: the signal it received, if
        any); return the agreed signal once the vote of ``step - lag`` asked to stop."""
        ballot = torch.tensor([signum or 0], dtype=torch.int64)
        with communicating("agreeing on when to stop"):
            work = dist.all_reduce(ballot, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        assert work is not None
        self._pending.append((step, ballot, work))
        while self._pending and self._pending[0][0] <= step - self.lag:
            self._count()
        return self.decided

    def drain(self) -> None:
        """Wait for every vote cast (training ended: the outcome no longer matters)."""
        while self._pending:
            self._count()

    def _count(self) -> None:
        _, ballot, work = self._pending.popleft()
        with communicating("agreeing on when to stop"):
            work.wait()
        if self.decided is None and int(ballot.item()):
            self.decided = int(ballot.item())


def sum_over_ranks(value: Tensor, group: dist.ProcessGroup) -> Tensor:
    """The sum of every rank's ``value`` (a CPU float64 copy, reduced on ``group``)."""
    total = value.detach().to("cpu", torch.float64).reshape(-1).clone()
    with communicating("adding up the ranks' figures"):
        dist.all_reduce(total, group=group)
    return total.reshape(value.shape)
