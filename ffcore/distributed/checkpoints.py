"""One ordinary checkpoint for a run that several processes train.

The file is the one-process format (:func:`ffcore.runs.save_run`, or whatever saves one
process's run), so ``ff eval``,
``ff debug``, :func:`ffcore.checkpoint.load_checkpoint` and ``ff train --resume`` read it
in a single process, or in any number of processes. Rank 0 writes it:

- data parallel: every rank holds the same weights and optimizer states, so rank 0's are
  the run's; nothing travels;
- layer pipeline: each rank holds the current state of its own layers (and the last rank
  of the read-out), so every rank sends rank 0 the ``state_dict`` entries and the
  optimizer states it trains, and rank 0 writes the whole model (and the copies of them
  the run's epoch selection holds, the best epoch's and the last's, and the weight
  average's). Rank 0's random generator is the run's (only the first stage draws
  negatives).

Every rank waits until the file is written before it goes on: a launcher stops all
ranks as soon as one exits with an error status, which would cut the write short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import Tensor

from ffcore.averaging import WeightAverage
from ffcore.distributed.faults import communicating
from ffcore.distributed.pipeline import LayerPipeline, owner_of
from ffcore.errors import CheckpointError
from ffcore.training import TrainingRun


def _stage_state(run: TrainingRun, pipeline: LayerPipeline) -> dict[str, Any]:
    """The weights and optimizer states this rank's stage trains: the current weights and
    the copies the run's epoch selection holds (the best epoch's, the last epoch's)."""
    model = run.model
    owner = owner_of(model, pipeline.stages)

    def owned(weights: Mapping[str, Tensor] | None) -> dict[str, Tensor] | None:
        if weights is None:
            return None
        return {k: v.detach().cpu() for k, v in weights.items() if owner(k) == pipeline.stage}

    names = {id(p): key for key, p in model.named_parameters()}
    optimizers: dict[int, Any] = {}
    for index, optimizer in enumerate(model.optimizers()):
        first = optimizer.param_groups[0]["params"][0]
        if owner(names.get(id(first), "")) == pipeline.stage:
            optimizers[index] = optimizer.state_dict()
    average = run.average
    return {
        "weights": owned(model.state_dict()),
        "best": owned(run.selection.best_weights),
        "last": owned(run.selection.last_weights),
        "optimizers": optimizers,
        "average": (
            None
            if average is None
            else {
                "averages": owned(average.averages),
                "training": owned(average.training),
                "counters": {i: (average.updates[i], average.stepped[i]) for i in optimizers},
            }
        ),
        "skipped": run.skipped,
    }


def _merge_average(average: WeightAverage, part: Mapping[str, Any]) -> None:
    """One stage's share of the weight average, into rank 0's."""
    for name, tensor in part["averages"].items():
        average.averages[name].copy_(tensor)
    if average.training is not None and part["training"] is not None:
        for name, tensor in part["training"].items():
            average.training[name] = tensor.to(average.averages[name].device)
    for index, (updates, stepped) in part["counters"].items():
        average.updates[index], average.stepped[index] = updates, stepped


def gather_stages(run: TrainingRun, pipeline: LayerPipeline) -> None:
    """Bring every stage's layers and optimizer states into rank 0's model (a collective:
    every rank of the pipeline calls it)."""
    # the replicas of a stage (the 2-D layout) hold the same state: the first one sends it
    empty: dict[str, Any] = {
        "weights": {},
        "best": {},
        "last": {},
        "optimizers": {},
        "average": None,
    }
    state = _stage_state(run, pipeline) if pipeline.column == 0 else empty
    state["skipped"] = run.skipped
    gathered: list[Any] | None = [None] * pipeline.world_size if pipeline.rank == 0 else None
    with communicating("gathering the layers for the checkpoint"):
        dist.gather_object(state, gathered, dst=0, group=pipeline.session.control)
    if gathered is None:
        return
    model, selection = run.model, run.selection
    weights = model.state_dict()
    optimizers = model.optimizers()
    for part in gathered:
        weights.update(part["weights"])
        # every rank's selection made the same choices (the accuracies are shared)
        if selection.best_weights is not None and part["best"] is not None:
            selection.best_weights.update(part["best"])
        if selection.last_weights is not None and part["last"] is not None:
            selection.last_weights.update(part["last"])
        for index, optimizer_state in part["optimizers"].items():
            optimizers[index].load_state_dict(optimizer_state)
        if run.average is not None and part["average"] is not None:
            _merge_average(run.average, part["average"])
        run.skipped = max(run.skipped, int(part["skipped"]))
    model.load_state_dict(weights)


def save_distributed(run: TrainingRun, write: Callable[[], Path]) -> Path:
    """Gather ``run`` on rank 0 and save it there with ``write`` while the other ranks
    wait (a collective: every rank calls it); every rank returns the path rank 0 wrote."""
    parallel = run.parallel
    if isinstance(parallel, LayerPipeline):
        gather_stages(run, parallel)
    if parallel is None or not dist.is_initialized():
        return write()
    error: BaseException | None = None
    written: list[str | None] = [None]
    if dist.get_rank() == 0:
        try:
            written[0] = str(write())
        except BaseException as exc:  # the others must not wait for a write that failed
            error = exc
    with communicating("waiting for rank 0 to write the checkpoint"):
        dist.broadcast_object_list(written, src=0, group=parallel.session.control)
    if error is not None:
        raise error
    if written[0] is None:
        raise CheckpointError("rank 0 could not write the checkpoint (its error says why)")
    return Path(written[0])
