"""One training batch and what is computed from it once and shared within its step."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(eq=False)
class Batch:
    """Inputs ``x`` ``(B, *input_shape)`` and labels ``y`` ``(B,)`` of one training step,
    plus work on them that several parts of the step need.

    The model passes the batch to the negative sampler, which may ask the model to score
    it (``goodness_per_label(batch)``, ``logits(batch)``); the model's layers then train
    on it. What one of them computes from the current weights the others reuse, through
    the fields below, for as long as the weights are unchanged: the model fills a field
    when it first computes it and calls :meth:`invalidate` once a layer has updated.
    A batch lives for one step (the trainer makes a new one for each).
    """

    x: Tensor
    y: Tensor
    #: The first layer's share of its pre-activation that depends on the image alone,
    #: ``W_x · x`` ``(B, out)``, for networks whose first layer reads the image with a
    #: label code appended (see :class:`~ffcore.interfaces.LabelAppender`): the same for
    #: every label the sampler, the read-out and the training step pair the image with.
    image_drive: Tensor | None = None
    #: Every layer's activations for the inputs with a neutral (all-zero) label, joined
    #: ``(B, features)``: what a read-out on the layers (FF+C's classifier) reads.
    neutral_features: Tensor | None = None

    def invalidate(self) -> None:
        """Forget what was computed from the weights: a layer has updated."""
        self.image_drive = None
        self.neutral_features = None


def inputs_of(source: Tensor | Batch) -> Tensor:
    """The inputs of ``source``: a batch's ``x``, or the tensor itself.

    Scoring methods (``goodness_per_label``, ``logits``) take either: a probe passes
    inputs, a negative sampler passes the training batch (whose cached work the model may
    reuse).
    """
    return source.x if isinstance(source, Batch) else source
