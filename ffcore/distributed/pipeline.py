"""The layer pipeline: each rank trains a contiguous run of layers, all ranks at once.

Rank ``k`` of ``n`` owns stage ``k``: the layers :func:`~ffcore.distributed.split.
balanced_split` gives it from the model's cost estimate; the last rank also owns the
read-out (FF+C's classifier). Every rank runs the trainer's loop over the same batches.
For batch ``t``, rank 0 draws the negatives and trains its layers; it sends their output
on (:class:`~ffcore.distributed.transport.Outbox`, asynchronous) and goes on with batch
``t + 1`` while rank 1 trains its layers on batch ``t``, and so on up the pipeline. The
ranks need not wait for anything from above: a Forward-Forward layer sends nothing down.

Exactness: a layer on stage ``k`` trains on batch ``t`` after exactly batches ``0..t-1``,
on the output the layer below computed for batch ``t`` in its own step, as in one process.
So a pipelined run computes what a one-process run computes, and with the same kernels
(the same thread count per process) its weights are the same bit for bit. That holds with
``recompute`` too: the stage below sends the output it recomputed after its update.

What cannot be pipelined is refused before training (:func:`check_pipeline`): a negative
sampler that scores labels with the whole network at the start of each batch (``hard``,
``neutral``); models whose layers do not train one after the other (FFRNN: every layer
reads both neighbours every frame; bp: trained end to end); probes other than TryAll and
the classifier read-out. Evaluation is pipelined as well: TryAll's scores accumulate along
the stages, FF+C's activations travel to the classifier on the last rank, and the last
rank shares the accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ffcore.data import iterate_batches
from ffcore.distributed.control import RankStopRequests, StopVote, sum_over_ranks
from ffcore.distributed.data_parallel import GradientAveraging, rank_seed, shard_bounds, take_share
from ffcore.distributed.environment import Session
from ffcore.distributed.faults import agree_on_failure
from ffcore.distributed.split import balanced_split, describe_split
from ffcore.distributed.transport import Inbox, Outbox, Skipped
from ffcore.errors import DivergenceError, FFLibError
from ffcore.eval_mode import eval_mode
from ffcore.interfaces import (
    Batch,
    FFModel,
    NegativeSampler,
    PipelineModel,
    Probe,
    Split,
    StageCost,
)
from ffcore.precision import autocast
from ffcore.signals import StopRequests

if TYPE_CHECKING:
    from ffcore.training import TrainingRun

#: The probes a pipelined evaluation can stand in for, and the read-out each ends in.
PIPELINED_PROBES = {"tryall": "goodness", "classifier": "logits"}
#: Samples per evaluation batch: one process's, so that every stage scores the same blocks
#: of images as one process does and the sums, hence the predictions, are the same.
EVAL_BATCH_SIZE = 1000


def check_pipeline(run: TrainingRun, stages: int) -> PipelineModel:
    """``run.model`` if ``run`` can be trained as a pipeline of ``stages`` stages; else an
    :class:`~ffcore.errors.FFLibError` naming the option that prevents it."""
    model, names = run.model, run.names
    if not isinstance(model, PipelineModel):
        raise FFLibError(
            f"--parallel layers cannot split model {names.get('model', type(model).__name__)!r} "
            "into pipeline stages: only models whose layers each train on the detached "
            "output of the layer below (ffnet, ffc) can be (ffrnn's layers read both "
            "neighbours every frame; bp trains end to end); use --parallel data"
        )
    if run.negatives.uses_model:
        raise FFLibError(
            f"--parallel layers cannot run --negatives {names.get('negatives', '?')!r}: it "
            "scores the labels with the whole network at the start of each batch, and in a "
            "pipeline no process holds every layer's current weights; use --negatives "
            "random or inverse, or --parallel data"
        )
    probe = names.get("probe", "")
    if probe not in PIPELINED_PROBES:
        raise FFLibError(
            f"--parallel layers cannot evaluate with --probe {probe!r}: a pipelined "
            f"evaluation stands in for the {' or '.join(PIPELINED_PROBES)} probe only; "
            "use one of those, or --parallel data"
        )
    layers = len(model.pipeline_layers())
    if layers < stages:
        raise FFLibError(
            f"--parallel layers with {stages} processes needs at least {stages} layers, one "
            f"per process; the model has {layers}: use fewer processes or --parallel data"
        )
    return model


def batch_shape(run: TrainingRun, columns: int = 1) -> StageCost:
    """What a training batch of ``run`` looks like: positives, negatives per positive and
    whether they share the positives' inputs (the sampler asked on two samples, with the
    random generator's state put back after)."""
    x, y = run.data.train.x[:2], run.data.train.y[:2]
    devices = [run.device] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        negative = run.negatives(Batch(x, y), run.model)
    per_positive = max(1, negative.y.shape[0] // max(1, y.shape[0]))
    positives = -(-run.config.batch_size // columns)
    return StageCost(positives, per_positive, negative.same_inputs)


class LayerPipeline:
    """The layer pipeline for ``run``: stage ``k`` on rank ``k`` of every rank by default.

    Attach it as ``run.parallel`` before :func:`ffcore.training.train`. ``columns`` lays
    out several pipelines side by side (the 2-D layout, see :mod:`ffcore.distributed.grid`):
    each column is a pipeline's ranks, bottom stage first; the columns train on shares of
    every batch, and ``replicas`` (this rank's group of the same stage in every column)
    averages their gradients. ``stages`` (layer index ranges, one per stage) replaces the
    cost-balanced split.
    """

    mode = "layers"
    whole_model = False

    def __init__(
        self,
        session: Session,
        run: TrainingRun,
        *,
        columns: Sequence[Sequence[int]] | None = None,
        replicas: dist.ProcessGroup | None = None,
        stages: Sequence[range] | None = None,
    ) -> None:
        self.session = session
        self.rank, self.world_size = session.rank, session.world_size
        layout = (
            [list(range(session.world_size))] if columns is None else [list(c) for c in columns]
        )
        self.column = next(i for i, ranks in enumerate(layout) if self.rank in ranks)
        self.columns = len(layout)
        self.replica = self.column
        self.ranks = layout[self.column]
        self.stage = self.ranks.index(self.rank)
        self.model: PipelineModel = check_pipeline(run, len(self.ranks))
        self.costs = self.model.pipeline_costs(batch_shape(run, self.columns))
        self.stages = (
            list(stages) if stages is not None else balanced_split(self.costs, len(self.ranks))
        )
        self.layers = self.stages[self.stage]
        self.first, self.last = self.stage == 0, self.stage == len(self.ranks) - 1
        self.owns_readout = self.last
        self.readout = PIPELINED_PROBES[run.names.get("probe", "")]
        self.seed = run.config.seed
        self._step = run.step
        links = session.link_groups(
            [(ranks[s], ranks[s + 1]) for ranks in layout for s in range(len(ranks) - 1)]
        )
        device = session.device
        below = None if self.first else self.ranks[self.stage - 1]
        above = None if self.last else self.ranks[self.stage + 1]
        self.inbox = None if below is None else Inbox(below, links[(below, self.rank)], device)
        self.outbox = None if above is None else Outbox(above, links[(self.rank, above)], device)
        self.gradients = None if self.columns == 1 else GradientAveraging(replicas, device)
        self._vote = StopVote(session.control, lag=2 * len(self.ranks) + 1)
        self._finished = False
        #: Seconds this rank computed its stage's training steps (the rest of its time it
        #: waited for the stage below or sent to the one above).
        self.seconds_computing = 0.0

    def describe(self) -> str:
        """The split, for the run's first lines."""
        split = describe_split(self.stages, self.costs)
        if self.columns == 1:
            return split
        return f"{split}; {self.columns} processes per stage, each on a share of every batch"

    # --- the trainer's hooks -----------------------------------------------------------

    def start(self, run: TrainingRun) -> None:
        if self.stage or self.column:
            run.loss_sum = 0.0  # a resumed run's partial sum is counted once, on rank 0
        self._step = run.step
        if self.gradients is not None:  # replicas of a stage: as data parallel does
            self.gradients.start(run)

    def stop_requests(self) -> StopRequests:
        return RankStopRequests()

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """Train this stage's layers on ``batch`` (this column's share of it, when there
        are several) and send their output on."""
        if self.gradients is not None:
            batch = take_share(batch, self.column, self.columns, self.gradients)
            if self.first:
                torch.manual_seed(rank_seed(self.seed, self.column, self._step))
        self._step += 1
        received = self._receive()
        if isinstance(received, Skipped):
            if self.outbox is not None:
                self.outbox.skip()
            raise DivergenceError("a lower pipeline stage skipped this batch")
        started = time.perf_counter()
        try:
            step = self.model.train_stage(batch, negatives, received, self.layers)
        except DivergenceError:
            if self.outbox is not None:
                self.outbox.skip()
            raise
        self.seconds_computing += time.perf_counter() - started
        if self.outbox is not None:
            self.outbox.send(step.send)
        return step.loss if self.gradients is None else self.gradients.reduce_loss(step.loss)

    def agreed_stop(self, step: int, signum: int | None) -> int | None:
        return self._vote.vote(step, signum)

    def total_loss(self, loss_sum: Tensor) -> Tensor:
        # each stage's replicas hold the same (reduced) loss: count one of them
        return sum_over_ranks(loss_sum if self.column == 0 else 0 * loss_sum, self.session.control)

    def agree(self, check: Callable[[], None]) -> None:
        agree_on_failure(check, self.session.control, all_must_fail=False)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, probe: Probe, split: Split, *, precision: str) -> float:
        """Accuracy on ``split``, pipelined: the last rank counts and shares it."""
        start, stop = shard_bounds(len(split), self.column, self.columns)
        share = Split(split.x[start:stop], split.y[start:stop])
        correct = torch.zeros((), dtype=torch.long, device=split.y.device)
        with eval_mode(model), autocast(split.x.device, precision):
            for x, y in iterate_batches(share, EVAL_BATCH_SIZE, shuffle=False):
                received = self._receive()
                if isinstance(received, Skipped):
                    raise FFLibError("a pipeline stage skipped an evaluation batch")
                out = self.model.score_stage(x, received, self.layers, self.readout)
                if self.outbox is not None:
                    self.outbox.send(out)
                else:
                    correct += (out[0].argmax(dim=1) == y).sum()
        count = sum_over_ranks(correct, self.session.control)  # the last stages' counts
        return float(count) / len(split)

    def finish(self) -> None:
        """Settle the stop votes and close the pipeline's links (once)."""
        if self._finished:
            return
        self._finished = True
        self._vote.drain()
        if self.outbox is not None:
            self.outbox.close()
        if self.inbox is not None:
            self.inbox.close()

    def _receive(self) -> list[Tensor] | Skipped | None:
        return None if self.inbox is None else self.inbox.receive()


def owner_of(model: FFModel, stages: Sequence[range]) -> Callable[[str], int]:
    """For a ``state_dict`` key of ``model``, the stage that trains it: the stage of the
    pipeline layer holding it, the last stage for everything else (the read-out)."""
    assert isinstance(model, PipelineModel)
    prefixes: list[tuple[str, int]] = []
    module_names = {id(m): n for n, m in model.named_modules()}
    for stage, layers in enumerate(stages):
        for index in layers:
            name = module_names[id(model.pipeline_layers()[index])]
            prefixes.append((f"{name}.", stage))

    def owner(key: str) -> int:
        for prefix, stage in prefixes:
            if key.startswith(prefix):
                return stage
        return len(stages) - 1

    return owner
