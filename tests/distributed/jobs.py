"""Training jobs that each rank of a test's process group runs, one after the other.

``python -m tests.distributed.jobs OUT JOB...`` in every rank (the launcher's variables
set) joins the process group once, then runs each named job through FFLib's own API
(build the run, attach its parallel layout, train, save from rank 0) and writes rank 0's
checkpoint to ``OUT/JOB.pt``. A job that raises writes its error to ``OUT/JOB.error``.
The tests compare what the jobs wrote with one-process runs of the same configs
(:data:`JOBS`).
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ffcore.config import TrainConfig
from ffcore.distributed.data_parallel import DataParallel
from ffcore.distributed.environment import DistEnvironment, prepare_process, start_session
from ffcore.distributed.grid import make_parallel
from ffcore.distributed.worker import Processes
from ffcore.errors import FFLibError
from ffcore.runs import resume_run, save_run
from ffcore.training import TrainingRun, build_run, train

#: The tiny settings every job shares: digits, few units, one epoch, batches that split
#: unevenly over two ranks (1294 training samples: 13 batches of 99 and one of 7).
BASE: dict[str, Any] = {
    "dataset": "digits",
    "device": "cpu",
    "layers": [32, 24],
    "epochs": 1,
    "batch_size": 99,
    "lr_schedule": "constant",
    # one process and several keep the same epoch only if their validation accuracies
    # agree to the last sample: data parallel's agree to float rounding, so its jobs
    # keep the last epoch (the pipeline's jobs keep the best, which they share exactly)
    "keep": "last",
}


@dataclass(frozen=True)
class Job:
    """A run's settings, and the checkpoint it resumes (a job run before it), if any."""

    settings: dict[str, Any]
    resume: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Data parallel only: average each layer's gradients while the next computes.
    overlap: bool = True

    def config(self) -> TrainConfig:
        return TrainConfig.from_dict({**BASE, **self.settings})


#: FF+C averaging its weights, data parallel, its FF layers done after the first epoch.
DP_AVERAGED: dict[str, Any] = {
    "model": "ffc",
    "negatives": "inverse",
    "parallel": "data",
    "epochs": 2,
    "ema_decay": 0.9,
    "model_options": {"schedule": "joint", "ff_epochs": 1},
}

JOBS: dict[str, Job] = {
    # data parallel against one process (deterministic negatives)
    "dp-ffnet": Job({"model": "ffnet", "negatives": "inverse", "parallel": "data"}),
    "dp-ffc": Job(
        {
            "model": "ffc",
            "negatives": "hard",
            "parallel": "data",
            "model_options": {"schedule": "joint"},
        }
    ),
    # overlapped averaging against waiting for it: the same weights, bit for bit
    "dp-ffnet-waiting": Job(
        {"model": "ffnet", "negatives": "inverse", "parallel": "data"}, overlap=False
    ),
    "dp-ffc-inverse": Job(
        {"model": "ffc", "negatives": "inverse", "parallel": "data", "layers": [32, 24, 16]}
    ),
    "dp-ffc-inverse-waiting": Job(
        {"model": "ffc", "negatives": "inverse", "parallel": "data", "layers": [32, 24, 16]},
        overlap=False,
    ),
    # weight averaging: its step hooks fire when a held-back step is taken
    "dp-ffc-ema": Job(DP_AVERAGED),
    "dp-ffc-ema-waiting": Job(DP_AVERAGED, overlap=False),
    "dp-ffrnn": Job(
        {"model": "ffrnn", "negatives": "inverse", "parallel": "data", "layers": [16, 16]}
    ),
    "dp-bp": Job({"model": "bp", "parallel": "data"}),
    # the pipeline against one process, bit for bit (random negatives: rank 0 draws them)
    "pp-ffnet": Job(
        {"model": "ffnet", "layers": [32, 24, 16], "parallel": "layers", "keep": "best"}
    ),
    "pp-ffnet-resumed": Job({}, resume="pp-ffnet", overrides={"epochs": 3}),
    "pp-ffc": Job(
        {
            "model": "ffc",
            "layers": [32, 24, 16],
            "epochs": 2,
            "keep": "best",
            "parallel": "layers",
            "loss": "symba",
            "model_options": {"schedule": "joint", "ff_epochs": 1},
        }
    ),
    # the best epoch (3) is not the last (4): rank 0 gathers both sets of weights
    "pp-best": Job(
        {
            "model": "ffc",
            "layers": [32, 24, 16],
            "epochs": 4,
            "batch_size": 32,
            "keep": "best",
            "parallel": "layers",
            "loss": "symba",
            "model_options": {"schedule": "joint", "classifier_lr": 0.03},
        }
    ),
    # weight averaging: each stage averages its own layers, rank 0 gathers the averages
    "pp-ffc-ema": Job(
        {
            "model": "ffc",
            "layers": [32, 24, 16],
            "epochs": 3,
            "keep": "best",
            "parallel": "layers",
            "loss": "symba",
            "ema_decay": 0.9,
            "model_options": {"schedule": "joint", "ff_epochs": 2},
        }
    ),
    "pp-recompute": Job(
        {"model": "ffnet", "parallel": "layers", "model_options": {"recompute": True}}
    ),
    # a run of one process resumed data parallel (a different process count)
    "dp-resumed": Job({}, resume="one-ffnet", overrides={"epochs": 2, "parallel": "data"}),
    # two pipeline stages, each held by two data-parallel replicas (four ranks)
    "grid-ffnet": Job(
        {"model": "ffnet", "negatives": "inverse", "parallel": "layers", "data_parallel": 2}
    ),
    # refused: the whole network scores the labels at the start of each batch
    "pp-hard": Job({"model": "ffnet", "negatives": "hard", "parallel": "layers"}),
}


def run_job(name: str, out: Path, processes: Processes) -> None:
    """Run job ``name`` in this rank; rank 0 writes ``out / f"{name}.pt"``."""
    job = JOBS[name]
    if job.resume is not None:
        run = resume_run(out / f"{job.resume}.pt", job.overrides)
    else:
        run = build_run(job.config())
    assert processes.session is not None
    session = processes.session
    run.parallel = (
        make_parallel(session, run) if job.overlap else DataParallel(session, run, overlap=False)
    )
    path = out / f"{name}.pt"

    def write(current: TrainingRun, metrics: dict[str, float] | None = None) -> Path:
        return save_run(current, path, metrics)

    processes.saving(write)(run, train(run))


def main(argv: list[str]) -> int:
    out, names = Path(argv[0]), argv[1:]
    env = DistEnvironment.detect()
    assert env is not None, "run me with the launcher's variables set"
    prepare_process(env)
    processes = Processes(env, start_session(env, torch.device("cpu")))
    try:
        for name in names:
            try:
                run_job(name, out, processes)
            except FFLibError as exc:
                if env.is_main:
                    (out / f"{name}.error").write_text(str(exc), encoding="utf-8")
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        processes.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
