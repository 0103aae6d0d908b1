"""What ``ff train`` needs to know about the processes it runs in.

One process (no launcher variables): nothing changes. One of several (started by
``torchrun`` or ``ff train --nproc``): the process takes its share of the cores and its
GPU and joins the process group; rank 0 builds its run first (loading, perhaps
downloading, the data set) and the others after it, so that no two processes download
into the same folder at once; then each trains with the parallel layout the settings ask
for. Only rank 0 prints, and checkpoints are written by rank 0 for all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist

from ffcore.distributed.checkpoints import save_distributed
from ffcore.distributed.control import RankStopRequests
from ffcore.distributed.data_parallel import DataParallel
from ffcore.distributed.environment import (
    DistEnvironment,
    Session,
    device_of,
    prepare_process,
    start_session,
)
from ffcore.distributed.faults import communicating
from ffcore.distributed.grid import make_parallel
from ffcore.distributed.pipeline import LayerPipeline
from ffcore.errors import FFLibError
from ffcore.signals import StopRequests
from ffcore.training import TrainingRun


class Checkpointer(Protocol):
    """Saves a run (with its final metrics, if any) and returns where."""

    def __call__(self, run: TrainingRun, metrics: dict[str, float] | None = None, /) -> Path: ...


class Processes:
    """The processes an ``ff train`` command runs in: this one alone, or one rank of
    several (see the module doc)."""

    def __init__(self, env: DistEnvironment | None, session: Session | None = None) -> None:
        self.env = env
        self.session = session

    @classmethod
    def current(cls) -> Processes:
        """From the launcher's environment variables: this rank's threads and GPU set,
        the process group joined."""
        env = DistEnvironment.detect()
        if env is None:
            return cls(None)
        prepare_process(env)
        return cls(env, start_session(env))

    @property
    def several(self) -> bool:
        """Whether this process is one of several (then ``nproc`` is the launcher's)."""
        return self.env is not None

    @property
    def is_main(self) -> bool:
        """Whether this process prints (rank 0, or the only one)."""
        return self.env is None or self.env.is_main

    @contextmanager
    def rank_zero_first(self) -> Iterator[None]:
        """Run the block on rank 0, then on the other ranks (once rank 0 is through it):
        building a run may download its data set, which two processes must not do into
        the same folder at once. A failure on rank 0 stops the others too."""
        if self.session is None:
            yield
            return
        first = self.session.rank == 0
        failed = torch.zeros(1, dtype=torch.int64)
        try:
            if first:
                try:
                    yield
                except BaseException:
                    failed[0] = 1
                    raise
        finally:
            if first:
                with communicating("waiting for rank 0 to build the run"):
                    dist.all_reduce(failed, group=self.session.control)
        if not first:
            with communicating("waiting for rank 0 to build the run"):
                dist.all_reduce(failed, group=self.session.control)
            if int(failed.item()):
                raise FFLibError("rank 0 could not build the run (its error says why)")
            yield

    def attach(self, run: TrainingRun) -> None:
        """Give ``run`` its parallel layout on the joined process group (several only)."""
        if self.env is None or self.session is None:
            return
        run.device = device_of(self.env, run.device)
        self.session.device = run.device
        run.parallel = make_parallel(self.session, run)

    def saving(self, write: Checkpointer) -> Checkpointer:
        """``write`` (how one process saves a run), for the processes of this run: every
        rank calls what this returns; of several, rank 0 gathers the run and writes it
        with ``write`` while the others wait, and every rank gets the path it wrote."""
        if self.env is None:
            return write

        def save(run: TrainingRun, metrics: dict[str, float] | None = None) -> Path:
            if run.parallel is None:
                return write(run, metrics)
            return save_distributed(run, lambda: write(run, metrics))

        return save

    def stop_requests(self) -> StopRequests:
        """What records SIGINT/SIGTERM: of several processes, one that ignores a repeated
        signal (see :class:`~ffcore.distributed.control.RankStopRequests`)."""
        return StopRequests() if self.env is None else RankStopRequests()

    def describe(self, run: TrainingRun) -> str | None:
        """A line about the layout for the run's first lines (``None`` for one process)."""
        parallel, session = run.parallel, self.session
        if parallel is None or session is None:
            return None
        threads = torch.get_num_threads()
        line = (
            f"processes: {session.world_size} "
            f"({'nccl' if session.device.type == 'cuda' else 'gloo'}, {threads} "
            f"thread{'s' if threads > 1 else ''} each), parallel {parallel.mode}"
        )
        if isinstance(parallel, LayerPipeline):
            line += f": {parallel.describe()}"
        elif isinstance(parallel, DataParallel):
            line += f": each rank trains on 1/{parallel.shards} of every batch"
        return line

    def close(self) -> None:
        """Leave the process group."""
        if self.session is not None:
            self.session.close()
            self.session = None
