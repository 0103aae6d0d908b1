"""Training on several processes and machines with ``torch.distributed``.

Two layouts, chosen with ``ff train --parallel``:

- ``data`` (the default with several processes, :class:`DataParallel`): every rank holds
  the whole model and trains on its share of each batch; each optimizer's gradients are
  averaged over the ranks before it steps.
- ``layers`` (:class:`LayerPipeline`): each rank trains a contiguous run of layers and
  passes its output on, all ranks at once on consecutive batches; it computes what one
  process computes.

and both at once (``--parallel layers --data-parallel D``, see :mod:`.grid`). Processes
are started by ``torchrun`` or by ``ff train --nproc N`` (:mod:`.launch`), which run the
same command in each; :mod:`.worker` is what ``ff train`` uses of this package. The
modules each have one job: :mod:`.environment` (who this process is, the process group),
:mod:`.control` (agreeing on stops, sums), :mod:`.faults` (errors when a rank is lost),
:mod:`.transport` (pipeline messages), :mod:`.split` (balancing the stages),
:mod:`.checkpoints` (one checkpoint from rank 0). See ``docs/distributed.md``.
"""

from ffcore.distributed.control import RankStopRequests, StopVote
from ffcore.distributed.data_parallel import DataParallel, GradientAveraging
from ffcore.distributed.environment import DistEnvironment, Session, start_session
from ffcore.distributed.faults import DistributedError
from ffcore.distributed.pipeline import LayerPipeline, check_pipeline
from ffcore.distributed.split import balanced_split
from ffcore.distributed.strategy import ParallelTraining

__all__ = [
    "DataParallel",
    "DistEnvironment",
    "DistributedError",
    "GradientAveraging",
    "LayerPipeline",
    "ParallelTraining",
    "RankStopRequests",
    "Session",
    "StopVote",
    "balanced_split",
    "check_pipeline",
    "start_session",
]
