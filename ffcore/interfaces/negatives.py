"""Negative samplers build the negative data an FF layer learns to reject."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from torch import Tensor

from ffcore.interfaces.batch import Batch

if TYPE_CHECKING:
    from ffcore.interfaces.model import FFModel


@dataclass(frozen=True)
class NegativeBatch:
    """Negative inputs and the labels that go with them.

    ``x`` has ``B * k`` rows for ``k`` negatives per positive, sample-major; for label-
    embedding nets ``x`` repeats the real inputs and ``y`` holds the wrong labels.
    ``same_inputs`` says that ``x`` is the batch's own inputs, each repeated ``k`` times in
    that sample-major order, only the labels differ: a network may then share its work on
    the inputs between positives and negatives (build such a batch with :meth:`relabelled`
    for ``k = 1``).
    """

    x: Tensor
    y: Tensor
    same_inputs: bool = False

    @classmethod
    def relabelled(cls, batch: Batch, y: Tensor) -> NegativeBatch:
        """The batch's own inputs with other labels ``y``."""
        return cls(x=batch.x, y=y, same_inputs=True)


class NegativeSampler(ABC):
    """Builds negatives for a batch; may ask the model (hard negatives)."""

    #: Whether the sampler reads the model (scores, logits) to build negatives. A layer
    #: pipeline (``--parallel layers``) cannot run such a sampler: no process holds every
    #: layer's current weights. ``True`` unless a sampler says otherwise, so that a
    #: sampler that does read the model is never pipelined by mistake.
    uses_model: ClassVar[bool] = True

    @abstractmethod
    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        """Negatives for the positives ``batch.x`` with labels ``batch.y``, for labels in
        ``0 .. model.num_classes - 1``. Draws from torch's global RNG."""
