"""What a model implements to be trained as a layer pipeline (``ff train --parallel layers``).

In a Forward-Forward network each layer trains on the detached output of the layer below
and sends nothing back, so the layers can live on different processes: stage ``k`` owns a
contiguous run of layers, receives the stage below's output for a batch, takes its layers'
steps and sends its own output on, while the stage below already works on the next batch.
The transport, the stage assignment and the schedule are FFLib's
(:mod:`ffcore.distributed.pipeline`); what a stage computes is the model's, through the
methods below. Messages are lists of tensors whose meaning only the model knows: whatever
``train_stage`` returns on stage ``k`` is what it receives on stage ``k + 1``.

A model may implement this only when a stage's layers, fed what the stage below sent for
batch ``t``, compute exactly what they compute in one process for batch ``t``: then the
pipelined run is the one-process run. Everything that needs every layer's current weights
at once (a negative sampler that scores labels with the whole network, see
:attr:`~ffcore.interfaces.NegativeSampler.uses_model`) cannot be pipelined; FFLib refuses
those before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

from ffcore.interfaces.batch import Batch

if TYPE_CHECKING:
    from ffcore.interfaces.negatives import NegativeSampler

#: The read-outs a pipelined evaluation can end in: ``goodness`` (TryAll: the goodness of
#: every label summed over the layers) and ``logits`` (a classifier read-out's scores).
READOUTS = ("goodness", "logits")


class StageStep(NamedTuple):
    """What a stage's training step gives: the tensors to send to the next stage (ignored
    on the last one) and the loss of the stage's own layers (detached, 0-d)."""

    send: list[Tensor]
    loss: Tensor


class StageCost(NamedTuple):
    """What the batches of a run look like, for :meth:`PipelineModel.pipeline_costs`."""

    #: Positive samples per batch.
    positives: int
    #: Negative rows per positive the run's sampler gives.
    negatives_per_positive: int
    #: Whether the negatives are the positives' own inputs with other labels.
    same_inputs: bool


@runtime_checkable
class PipelineModel(Protocol):
    """A model whose FF layers can be split into pipeline stages (see the module doc)."""

    def pipeline_layers(self) -> Sequence[nn.Module]:
        """The layers the stages share out, bottom first; each stage trains a contiguous
        run of them. Every parameter outside them (a read-out) lives on the last stage."""
        ...

    def pipeline_costs(self, batches: StageCost) -> list[float]:
        """Each of :meth:`pipeline_layers`' relative cost per training batch (any unit),
        from which FFLib splits the layers into stages of about equal cost."""
        ...

    def train_stage(
        self,
        batch: Batch,
        negatives: NegativeSampler,
        received: Sequence[Tensor] | None,
        layers: range,
    ) -> StageStep:
        """Train ``layers`` (indices into :meth:`pipeline_layers`) on ``batch``.

        The first stage (``received is None``) draws the negatives; a later stage reads the
        stage below's output from ``received`` (``batch`` is the same batch, so labels
        need not travel). The stage holding the top layer also trains any read-out.
        """
        ...

    def score_stage(
        self, x: Tensor, received: Sequence[Tensor] | None, layers: range, readout: str
    ) -> list[Tensor]:
        """The evaluation counterpart of :meth:`train_stage` for inputs ``x``, without
        training. ``readout`` is one of :data:`READOUTS`; the stage holding the top layer
        returns ``[scores]``, shape ``(B, num_classes)``, whose argmax is the prediction
        (the same as the ``tryall`` or ``classifier`` probe's)."""
        ...


@runtime_checkable
class DeferrableSteps(Protocol):
    """A :class:`PipelineModel` that may say its stages step their optimizers last.

    Data-parallel training uses it to overlap communication with computation: when
    :meth:`can_defer_steps` is true, it trains the model layer by layer through
    :meth:`PipelineModel.train_stage`, lets each optimizer's ``step()`` only start the
    averaging of its gradients, and takes the step just before the next stage that
    holds its parameters computes. That gives the same weights only if a stage reads no
    parameter of its own after stepping it: e.g. FFNet with ``recompute`` reads the
    updated layer again, so it answers false.
    """

    def can_defer_steps(self) -> bool:
        """Whether :meth:`PipelineModel.train_stage` reads none of its layers' (or its
        read-out's) parameters after calling their optimizers' ``step()``."""
        ...
