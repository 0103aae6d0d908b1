"""What ``ff train`` needs to know about the processes it runs in.

One process (no launcher variables): nothing changes. One of several (started by
``torchrun`` or ``ff train --nproc``): the process takes its share of the cores and its
GPU before the run is built, joins the process group once it is, and trains with the
parallel layout the settings ask for; only rank 0 prints, and checkpoints are written
by rank 0 for all.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ffcore.distributed.checkpoints import save_distributed
from ffcore.distributed.data_parallel import DataParallel
from ffcore.distributed.environment import (
    DistEnvironment,
    Session,
    device_of,
    prepare_process,
    start_session,
)
from ffcore.distributed.grid import make_parallel
from ffcore.distributed.pipeline import LayerPipeline
from ffcore.runs import save_run
from ffcore.training import TrainingRun


class Processes:
    """The processes an ``ff train`` command runs in: this one alone, or one rank of
    several (see the module doc)."""

    def __init__(self, env: DistEnvironment | None) -> None:
        self.env = env
        self.session: Session | None = None

    @classmethod
    def current(cls) -> Processes:
        """From the launcher's environment variables; sets this rank's threads and GPU."""
        env = DistEnvironment.detect()
        if env is not None:
            prepare_process(env)
        return cls(env)

    @property
    def several(self) -> bool:
        """Whether this process is one of several (then ``nproc`` is the launcher's)."""
        return self.env is not None

    @property
    def is_main(self) -> bool:
        """Whether this process prints (rank 0, or the only one)."""
        return self.env is None or self.env.is_main

    def attach(self, run: TrainingRun) -> None:
        """Join the process group and give ``run`` its parallel layout (several only)."""
        if self.env is None:
            return
        run.device = device_of(self.env, run.device)
        self.session = start_session(self.env, run.device)
        run.parallel = make_parallel(self.session, run)

    def save(
        self,
        run: TrainingRun,
        path: str | os.PathLike[str],
        metrics: dict[str, float] | None = None,
    ) -> Path:
        """Write ``run``'s checkpoint (rank 0 writes it for all)."""
        if run.parallel is None:
            return save_run(run, path, metrics)
        return save_distributed(run, path, metrics)

    def describe(self, run: TrainingRun) -> str | None:
        """A line about the layout for the run's first lines (``None`` for one process)."""
        parallel, session = run.parallel, self.session
        if parallel is None or session is None:
            return None
        threads = torch.get_num_threads()
        line = (
            f"processes: {session.world_size} ({session.backend}, {threads} "
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
