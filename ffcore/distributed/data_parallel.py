"""Data parallel: every rank holds the whole model and trains on its share of each batch.

Every rank iterates over the same global batches in the same order (the order is a
function of the seed and the epoch) and takes a contiguous share of each: rank ``r`` of
``n`` rows ``r * B // n`` to ``(r + 1) * B // n``. Before any optimizer of the model
steps, the gradients of its parameters are averaged over the ranks, each weighted by its
share of the batch (``B_r / B``), so the step is the one a single process takes on the
global batch (up to the order of the sums): FF losses are means over the batch, and the
mean of the global batch is the weighted mean of the shares'.

How, for every model, plugin models included, without touching them: a step pre-hook on
each optimizer the model lists in :meth:`~ffcore.interfaces.FFModel.optimizers`
(``Optimizer.register_step_pre_hook``). FF layers step one after the other, so each
layer's gradients travel just before its own step. Large gradients are reduced in place
(no copy), the small ones packed into one buffer per optimizer together with the floating
buffers of the modules the optimizer trains (FFDense's ``peer_mean``: averaged with the
same weights, it stays the running mean of the global batch and the same on every rank)
and a "has a gradient" flag per parameter (a parameter without a gradient on every rank
stays without one, as the optimizer then skips it).

A rank whose share of a (last, small) batch is empty trains on one row with weight 0, so
that every rank takes the same optimizer steps. Negatives are drawn per rank: before
each batch the global generator is seeded from the run's seed, the rank and the batch
number, so a resumed run draws what the uninterrupted one would, on any rank count.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ffcore.distributed.control import RankStopRequests, StopVote
from ffcore.distributed.environment import Session
from ffcore.distributed.evaluation import correct_predictions
from ffcore.distributed.faults import agree_on_failure, communicating
from ffcore.errors import DivergenceError, FFLibError
from ffcore.interfaces import (
    Batch,
    DeferrableSteps,
    FFLayer,
    FFModel,
    NegativeSampler,
    PipelineModel,
    Probe,
    Split,
)
from ffcore.plugin_manager import get_plugin_manager
from ffcore.signals import StopRequests

if TYPE_CHECKING:
    from ffcore.training import TrainingRun

#: Gradients with at least this many elements are reduced in place, one call each; the
#: rest travel packed in one buffer per optimizer.
IN_PLACE_ELEMENTS = 1 << 16


def shard_bounds(total: int, rank: int, ranks: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a batch of ``total`` that rank ``rank`` of ``ranks``
    takes: contiguous, sizes differing by at most one."""
    return rank * total // ranks, (rank + 1) * total // ranks


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s generator for batch ``step`` of a run seeded ``seed``."""
    digest = hashlib.blake2b(f"fflib:{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class _Bucket:
    """What one optimizer's pre-step hook reduces."""

    name: str
    layer: nn.Module | None
    in_place: list[nn.Parameter]
    packed: list[nn.Parameter]
    buffers: list[Tensor]
    flat: Tensor

    @property
    def parameters(self) -> list[nn.Parameter]:
        return [*self.in_place, *self.packed]


def _owners(model: nn.Module) -> dict[int, tuple[str, nn.Module]]:
    """For each parameter (by id), the innermost named module that holds it directly."""
    owners: dict[int, tuple[str, nn.Module]] = {}
    for name, module in model.named_modules():
        for parameter in module.parameters(recurse=False):
            owners[id(parameter)] = (name, module)
    return owners


def _bucket(optimizer: torch.optim.Optimizer, model: nn.Module, device: torch.device) -> _Bucket:
    parameters: list[nn.Parameter] = [
        p for group in optimizer.param_groups for p in group["params"] if p.requires_grad
    ]
    owners = _owners(model)
    modules: dict[int, tuple[str, nn.Module]] = {}
    for parameter in parameters:
        name, module = owners.get(id(parameter), ("?", model))
        modules.setdefault(id(module), (name, module))
    buffers = [
        b
        for _, module in modules.values()
        for b in module.buffers(recurse=False)
        if b.is_floating_point()
    ]
    in_place = [p for p in parameters if p.numel() >= IN_PLACE_ELEMENTS]
    packed = [p for p in parameters if p.numel() < IN_PLACE_ELEMENTS]
    size = sum(p.numel() for p in packed) + sum(b.numel() for b in buffers) + len(parameters)
    names = sorted({name for name, _ in modules.values()})
    layers = [m for _, m in modules.values() if isinstance(m, FFLayer)]
    layer = layers[0] if len(layers) == 1 else None
    if layer is None:
        ff = [m for m in model.modules() if isinstance(m, FFLayer) and m.optimizer is optimizer]
        layer = ff[0] if ff else None
    return _Bucket(
        name=", ".join(names) or type(model).__name__,
        layer=layer,
        in_place=in_place,
        packed=packed,
        buffers=buffers,
        flat=torch.zeros(size, dtype=torch.float32, device=device),
    )


class GradientAveraging:
    """Averages gradients over the ranks of ``group`` before every optimizer step of a
    model, each rank weighted by ``weight`` (its share of the batch); see the module doc.

    ``check_finite``: after reducing, a non-finite gradient raises
    :class:`~ffcore.errors.DivergenceError` on every rank alike (``--on-nonfinite skip``).
    """

    def __init__(self, group: dist.ProcessGroup | None, device: torch.device) -> None:
        self.group = group
        self.device = device
        self.weight = 1.0
        self.check_finite = False
        self._hooks: list[Any] = []
        self._buckets: dict[int, _Bucket] = {}
        self._deferred: list[torch.optim.Optimizer] = []
        #: Steps held back (``install(..., deferred=True)``): bucket, the real step, the
        #: reductions in flight.
        self._pending: dict[int, tuple[_Bucket, Callable[[], Any], list[dist.Work]]] = {}
        #: Bytes this rank sent into all-reduces, and seconds it spent reducing.
        self.bytes_reduced = 0
        self.seconds_reducing = 0.0

    def start(self, run: TrainingRun, *, deferred: bool = False) -> None:
        """Same weights on every rank of the group, averaging before every optimizer step
        (``deferred``: in the background, see :meth:`install`).

        A rank's own loss check would skip or stop on that rank alone; the reduced
        gradients (``skip``) and the reduced loss (the trainer's check) are the same on
        every rank, so every rank decides alike.
        """
        self.broadcast([*run.model.parameters(), *run.model.buffers()])
        self.check_finite = run.config.on_nonfinite == "skip"
        for module in run.model.modules():
            if isinstance(module, FFLayer):
                module.check_finite = False
        self.install(run.model, run.model.optimizers(), deferred=deferred)

    def install(
        self, model: FFModel, optimizers: list[torch.optim.Optimizer], *, deferred: bool = False
    ) -> None:
        """Hook ``optimizers`` (of ``model``), after removing any earlier hooks.

        By default a step waits for its gradients' averages before it updates. With
        ``deferred``, ``optimizer.step()`` only starts averaging and returns, so that the
        averaging travels while the model computes on; the update waits for
        :meth:`settle`, which the caller runs before anything reads those parameters.
        """
        self.remove()
        for optimizer in optimizers:
            self._buckets[id(optimizer)] = _bucket(optimizer, model, self.device)
            if deferred:
                self._defer(optimizer)
                self._deferred.append(optimizer)
            else:
                self._hooks.append(optimizer.register_step_pre_hook(self._before_step))

    def remove(self) -> None:
        """Take any held-back steps, then remove the hooks."""
        self.settle()
        for handle in self._hooks:
            handle.remove()
        for optimizer in self._deferred:
            optimizer.__dict__.pop("step", None)
        self._hooks.clear()
        self._deferred.clear()
        self._buckets.clear()

    def broadcast(self, tensors: list[Tensor]) -> None:
        """The group's first rank's ``tensors`` on every rank of the group (the starting
        weights agree already when every rank built the model from the same seed; this
        makes sure of it)."""
        source = dist.get_global_rank(self.group, 0) if self.group is not None else 0
        with communicating("sharing the starting weights"), torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor.data, src=source, group=self.group)

    def reduce_loss(self, loss: Tensor) -> Tensor:
        """The weighted sum of every rank's ``loss``: the batch's loss."""
        reduced = (loss.detach().float() * self.weight).reshape(1)
        with communicating("adding up the batch's loss"):
            dist.all_reduce(reduced, group=self.group)
        return reduced[0]

    def settle(self, optimizers: Iterable[torch.optim.Optimizer] | None = None) -> None:
        """Take the steps held back (of ``optimizers``, or all; see :meth:`install`): wait
        for their gradients' averages, then step."""
        wanted = None if optimizers is None else {id(o) for o in optimizers}
        for key in list(self._pending):
            if wanted is None or key in wanted:
                bucket, take_step, works = self._pending.pop(key)
                self._land(bucket, works)
                take_step()

    def _defer(self, optimizer: torch.optim.Optimizer) -> None:
        """Make ``optimizer.step()`` start averaging its gradients and return; the step
        itself waits for :meth:`settle`."""
        bucket = self._buckets[id(optimizer)]
        take_step = optimizer.step

        def step(closure: Callable[[], float] | None = None) -> None:
            if closure is not None:
                raise FFLibError(
                    "data parallel training with overlapped averaging cannot step an "
                    "optimizer with a closure (it evaluates the loss again)"
                )
            self.settle([optimizer])  # a second step of one layer in one batch: in order
            self._pending[id(optimizer)] = (bucket, take_step, self._launch(bucket))

        optimizer.__dict__["step"] = step  # this instance only; removed by :meth:`remove`

    def _before_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        bucket = self._buckets.get(id(optimizer))
        if bucket is not None:
            self._land(bucket, self._launch(bucket))

    def _launch(self, bucket: _Bucket) -> list[dist.Work]:
        """Start averaging ``bucket``'s gradients and buffers; the operations' handles."""
        started = time.perf_counter()
        flat, weight = bucket.flat, self.weight
        has_grad = [p.grad is not None for p in bucket.parameters]
        works: list[dist.Work] = []
        with communicating(f"averaging the gradients of {bucket.name}"):
            for parameter in bucket.in_place:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
                grad = parameter.grad.mul_(weight)
                work = dist.all_reduce(grad, group=self.group, async_op=True)
                assert work is not None
                works.append(work)
                self.bytes_reduced += grad.numel() * grad.element_size()
            at = 0
            for parameter in bucket.packed:
                count = parameter.numel()
                if parameter.grad is None:
                    flat[at : at + count].zero_()
                else:
                    flat[at : at + count].copy_(parameter.grad.reshape(-1))
                at += count
            for buffer in bucket.buffers:
                flat[at : at + buffer.numel()].copy_(buffer.reshape(-1))
                at += buffer.numel()
            flat[:at].mul_(weight)
            flat[at:] = torch.tensor(has_grad, dtype=flat.dtype)
            work = dist.all_reduce(flat, group=self.group, async_op=True)
            assert work is not None
            works.append(work)
            self.bytes_reduced += flat.numel() * flat.element_size()
        self.seconds_reducing += time.perf_counter() - started
        return works

    def _land(self, bucket: _Bucket, works: list[dist.Work]) -> None:
        """Wait for ``works`` (started by :meth:`_launch`) and put the averages in place."""
        started = time.perf_counter()
        with communicating(f"averaging the gradients of {bucket.name}"):
            for work in works:
                work.wait()
        parameters, flat = bucket.parameters, bucket.flat
        at = 0
        for parameter in bucket.packed:
            count = parameter.numel()
            values = flat[at : at + count].view_as(parameter)
            if parameter.grad is None:
                parameter.grad = values.to(parameter.dtype).clone()
            else:
                parameter.grad.copy_(values)
            at += count
        for buffer in bucket.buffers:
            buffer.copy_(flat[at : at + buffer.numel()].view_as(buffer))
            at += buffer.numel()
        for parameter, ranks_with_grad in zip(parameters, flat[at:].tolist(), strict=True):
            if ranks_with_grad == 0:
                parameter.grad = None
        self.seconds_reducing += time.perf_counter() - started
        if self.check_finite:
            grads = [p.grad for p in parameters if p.grad is not None]
            if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
                raise DivergenceError(f"non-finite gradient in {bucket.name}", layer=bucket.layer)


class DataParallel:
    """Data-parallel training of a run on every rank.

    Attach it as ``run.parallel`` before :func:`ffcore.training.train`.

    ``overlap`` (on by default): when the model can be trained layer by layer (a
    :class:`~ffcore.interfaces.PipelineModel` whose stages read no weights after stepping,
    see :class:`~ffcore.interfaces.DeferrableSteps`), each layer's gradients are averaged
    while the layers above compute, and the top layer's while the next batch's lower
    layers compute: a layer's step waits only until that layer computes again. The steps
    are the same as without overlap, in the same order per layer, so the weights are too.
    """

    mode = "data"
    whole_model = True
    owns_readout = True

    def __init__(self, session: Session, run: TrainingRun, *, overlap: bool = True) -> None:
        self.session = session
        self.rank, self.world_size = session.rank, session.world_size
        self.shard, self.shards = session.rank, session.world_size
        self.replica = self.shard
        self.model: FFModel = run.model
        self.seed = run.config.seed
        self.overlap = overlap
        self.gradients = GradientAveraging(None, session.device)
        self._vote = StopVote(session.control, lag=2)
        self._step = run.step
        #: With overlap: each layer's index range and the optimizers to settle before it.
        self._stages: list[tuple[range, list[torch.optim.Optimizer]]] = []
        self._settle_each_batch = False

    # --- the trainer's hooks -----------------------------------------------------------

    def start(self, run: TrainingRun) -> None:
        """Same weights everywhere, gradient averaging before every optimizer step."""
        self.model, self._step = run.model, run.step
        skipping = run.config.on_nonfinite == "skip"  # decides within the batch: no overlap
        self._stages = [] if not self.overlap or skipping else layer_stages(run.model)
        self.gradients.start(run, deferred=bool(self._stages))
        # a plugin reading the model at the end of every batch (a tracer) sees it settled
        self._settle_each_batch = get_plugin_manager().has_implementations("fflib_batch_end")

    def stop_requests(self) -> StopRequests:
        return RankStopRequests()

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """Train on this rank's share of ``batch``; the batch's loss, reduced."""
        share = take_share(batch, self.shard, self.shards, self.gradients)
        torch.manual_seed(rank_seed(self.seed, self.shard, self._step))
        self._step += 1
        if not self._stages:
            return self.gradients.reduce_loss(self.model.train_batch(share, negatives))
        model = self.model
        assert isinstance(model, PipelineModel)
        if negatives.uses_model:  # it reads every layer before the first trains
            self.gradients.settle()
        received: list[Tensor] | None = None
        loss = torch.zeros((), device=share.x.device)
        for layers, optimizers in self._stages:
            self.gradients.settle(optimizers)
            step = model.train_stage(share, negatives, received, layers)
            received, loss = step.send, loss + step.loss
        if self._settle_each_batch:
            self.gradients.settle()
        return self.gradients.reduce_loss(loss)

    def agreed_stop(self, step: int, signum: int | None) -> int | None:
        agreed = self._vote.vote(step, signum)
        if agreed is not None:
            self.gradients.settle()  # the checkpoint comes next
        return agreed

    def total_loss(self, loss_sum: Tensor) -> Tensor:
        return loss_sum  # each batch's loss is already the global one

    def agree(self, check: Callable[[], None]) -> None:
        self.gradients.settle()  # the epoch's end: the checks read the weights
        agree_on_failure(check, self.session.control, all_must_fail=True)

    def evaluate(self, model: nn.Module, probe: Probe, split: Split, *, precision: str) -> float:
        """Accuracy on ``split``: each rank predicts its share, the counts are added."""
        self.gradients.settle()
        start, stop = shard_bounds(len(split), self.shard, self.shards)
        share = Split(split.x[start:stop], split.y[start:stop])
        correct = correct_predictions(model, probe, share, precision=precision)
        count = torch.tensor([correct], dtype=torch.float64)
        with communicating("adding up the correct predictions"):
            dist.all_reduce(count, group=self.session.control)
        return float(count[0]) / len(split)

    def finish(self) -> None:
        """Settle the stop votes; take any held-back steps and remove the optimizer hooks."""
        self._vote.drain()
        self.gradients.remove()


def layer_stages(model: FFModel) -> list[tuple[range, list[torch.optim.Optimizer]]]:
    """For overlapped averaging: ``model``'s layers one by one, each with the optimizers
    whose steps must be taken before it computes (those holding any of its parameters; a
    read-out's before the top layer, which trains it). Empty when the model cannot be
    trained so (see :class:`~ffcore.interfaces.DeferrableSteps`)."""
    if not isinstance(model, PipelineModel) or not isinstance(model, DeferrableSteps):
        return []
    if not model.can_defer_steps():
        return []
    layers = model.pipeline_layers()
    index_of = {id(p): index for index, layer in enumerate(layers) for p in layer.parameters()}
    stages: list[tuple[range, list[torch.optim.Optimizer]]] = [
        (range(index, index + 1), []) for index in range(len(layers))
    ]
    for optimizer in model.optimizers():
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for index in sorted({index_of.get(id(p), len(layers) - 1) for p in params}):
            stages[index][1].append(optimizer)
    return stages


def take_share(batch: Batch, shard: int, shards: int, gradients: GradientAveraging) -> Batch:
    """Shard ``shard``'s rows of ``batch``, with ``gradients.weight`` set to their share.

    A shard with no rows (a last batch smaller than the shard count) trains on one row
    with weight 0, so that every rank takes the same optimizer steps.
    """
    total = batch.y.shape[0]
    start, stop = shard_bounds(total, shard, shards)
    gradients.weight = (stop - start) / total
    if stop == start:
        start, stop = 0, 1
    return Batch(batch.x[start:stop], batch.y[start:stop])
