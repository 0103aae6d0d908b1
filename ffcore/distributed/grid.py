"""The parallel layout a run's settings ask for: data parallel, a pipeline, or both.

``--parallel data`` (the default with several processes): every rank a replica.
``--parallel layers``: one pipeline, a stage per rank. ``--parallel layers
--data-parallel D``: the 2-D layout, from a :func:`torch.distributed.device_mesh.
init_device_mesh` of ``(stages, replicas)``: ``W / D`` pipeline stages, each held by
``D`` replicas. Replica ``d`` of every stage forms one pipeline (a column) that trains
on share ``d`` of every batch; a stage's replicas average their gradients as data
parallel does. Rank ``s * D + d`` is stage ``s`` of column ``d``.
"""

from __future__ import annotations

from ffcore.distributed.data_parallel import DataParallel
from ffcore.distributed.environment import Session
from ffcore.distributed.pipeline import LayerPipeline
from ffcore.distributed.strategy import ParallelTraining
from ffcore.errors import InvalidValueError
from ffcore.training import TrainingRun


def make_parallel(session: Session, run: TrainingRun) -> ParallelTraining:
    """The layout ``run.config`` asks for (``parallel``, ``data_parallel``) on ``session``."""
    world = session.world_size
    mode = run.config.parallel or "data"
    replicas = run.config.data_parallel
    if mode == "data":
        if replicas not in (None, world):
            raise InvalidValueError(
                "data_parallel",
                replicas,
                f"unset with --parallel data (every one of the {world} processes is a "
                "replica); it sets the replicas of each stage with --parallel layers",
            )
        return DataParallel(session, run)
    replicas = replicas or 1
    if world % replicas:
        raise InvalidValueError("data_parallel", replicas, f"a divisor of the {world} processes")
    if replicas == 1:
        return LayerPipeline(session, run)
    if replicas == world:
        raise InvalidValueError(
            "data_parallel",
            replicas,
            f"fewer than the {world} processes with --parallel layers (at least two "
            "stages); use --parallel data for data parallel alone",
        )
    from torch.distributed.device_mesh import init_device_mesh

    stages = world // replicas
    mesh = init_device_mesh(
        session.device.type, (stages, replicas), mesh_dim_names=("stage", "replica")
    )
    columns = [[stage * replicas + column for stage in range(stages)] for column in range(replicas)]
    return LayerPipeline(session, run, columns=columns, replicas=mesh.get_group("replica"))
