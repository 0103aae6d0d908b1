"""FF+C: FF layers as a feature extractor plus a backprop-trained linear classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch, FFLayer, NegativeSampler, StageStep, inputs_of
from ffcore.layers import choice, non_negative_int
from ffcore.optim import check_lr, make_optimizer
from ffcore.precision import full_precision
from ffplugins.ffnet import FFNet, build_layer_stack, input_width

SCHEDULES = ("two-phase", "joint")


class FFC(FFNet):
    """FFNet layers plus ``nn.Linear`` on the concatenated activations of every layer.

    The classifier sees the layers' activations for the input with a neutral (all-zero)
    label, is trained with cross-entropy by its own optimizer, and predicts in one
    forward pass (probe ``classifier``). Schedules: ``two-phase`` (FFLib 0.3.0's: FF
    layers for the first ``ff_epochs`` epochs, half of them by default, then the
    classifier alone) and ``joint`` (both every batch, the classifier reading detached
    features, for the first ``ff_epochs`` epochs, all of them by default; then the
    classifier alone on the frozen layers). ``tryall`` still works on the FF layers.

    The learning-rate schedule runs over each phase: the FF layers' schedule ends with
    their last epoch, and the classifier's restarts when it trains alone (see
    :meth:`schedule_positions`), at ``readout_lr`` when given (else ``classifier_lr``).

    In the joint schedule one neutral-label pass per batch, before the FF layers' update,
    gives the features the classifier learns from; a negative sampler that asks for the
    read-out's ``logits`` of the same batch (``neutral``) gets them from that pass too.
    """

    default_probe = "classifier"

    def __init__(
        self,
        layers: Sequence[FFLayer],
        input_features: int,
        num_classes: int,
        *,
        classifier_lr: float = 1e-3,
        optimizer: str = "adam",
        schedule: str = "two-phase",
        ff_epochs: int | None = None,
        readout_lr: float | None = None,
        layer_range: Sequence[int] | str | None = None,
        label_scale: float = 1.0,
        label_scheme: str = "concat",
    ) -> None:
        super().__init__(
            layers,
            input_features,
            num_classes,
            layer_range=layer_range,
            label_scale=label_scale,
            label_scheme=label_scheme,
        )
        self.schedule = choice("schedule", schedule, SCHEDULES)
        self.ff_epochs = (
            None
            if ff_epochs is None
            else non_negative_int("ff_epochs", ff_epochs, "a non-negative integer or None")
        )
        self.classifier_lr = check_lr(classifier_lr, "classifier_lr")
        self.readout_lr = None if readout_lr is None else check_lr(readout_lr, "readout_lr")
        with torch.no_grad():
            probe_input = torch.zeros(1, input_features)
            feature_count = self.features(probe_input).shape[1]
        self.classifier = nn.Linear(feature_count, num_classes)
        self.classifier_optimizer = make_optimizer(
            optimizer, self.classifier.parameters(), classifier_lr
        )
        #: What the current epoch trains: "ff", "classifier" or "both".
        self.phase = "both" if schedule == "joint" else "ff"

    def ff_epochs_of(self, epochs: int) -> int:
        """How many of ``epochs`` train the FF layers (the rest train the classifier)."""
        if self.ff_epochs is not None:
            return min(self.ff_epochs, epochs)
        return epochs if self.schedule == "joint" else max(1, epochs // 2)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        if epoch >= self.ff_epochs_of(epochs):
            self.phase = "classifier"
        else:
            self.phase = "both" if self.schedule == "joint" else "ff"

    def schedule_positions(self, epoch: int, epochs: int) -> list[tuple[int, int]]:
        """The FF layers' schedule spans their ``ff_epochs``; the classifier's spans the
        epochs it trains in, restarting when it goes on alone after the joint phase."""
        ff_epochs = self.ff_epochs_of(epochs)
        ff_position = (min(epoch, ff_epochs - 1), ff_epochs) if ff_epochs else (0, 1)
        if epoch >= ff_epochs:
            classifier_position = (epoch - ff_epochs, epochs - ff_epochs)
        elif self.schedule == "joint":
            classifier_position = (epoch, ff_epochs)
        else:  # waits for its phase
            classifier_position = (0, max(1, epochs - ff_epochs))
        return [ff_position] * (len(self.optimizers()) - 1) + [classifier_position]

    def lr_scales(self, epoch: int, epochs: int) -> list[float]:
        """``readout_lr / classifier_lr`` for the classifier once it trains alone; else 1."""
        classifier = 1.0
        if self.readout_lr is not None and epoch >= self.ff_epochs_of(epochs):
            classifier = self.readout_lr / self.classifier_lr
        return [1.0] * (len(self.optimizers()) - 1) + [classifier]

    @torch.no_grad()
    def features(self, x: Tensor | Batch) -> Tensor:
        """Concatenated activations of every FF layer for ``x`` with a neutral label."""
        return torch.cat(self.layer_activations(x), dim=1)

    @torch.no_grad()
    def layer_activations(self, source: Tensor | Batch) -> list[Tensor]:
        """Each FF layer's activations for the inputs with a neutral label, flattened to
        rows (for a training batch, from the batch's shared image drive)."""
        return self._activations_range(source, None, range(len(self.layers)))

    @torch.no_grad()
    def _activations_range(
        self, source: Tensor | Batch, h: Tensor | None, layers: range
    ) -> list[Tensor]:
        """:meth:`layer_activations` of ``layers``; ``h`` is the neutral activations of the
        layer below them when they do not start at the first layer."""
        activations: list[Tensor] = []
        for index in layers:
            if index == 0:
                h = self._first_neutral(source)
            else:
                assert h is not None
                h = self.layers[index](h)
            activations.append(h.reshape(h.shape[0], -1))
        return activations

    def _first_neutral(self, source: Tensor | Batch) -> Tensor:
        """The first layer's activations for the inputs with a neutral label."""
        x, drive = inputs_of(source), self._drive_of(source)
        appender = self._label_appender()
        if appender is None or drive is None:
            h: Tensor = self.layers[0](self.neutral_input(x))
            return h
        # in a training batch: the neutral code adds nothing to the shared W_x · x
        flat = self.flatten(x)
        neutral = flat.new_zeros(1, self.num_classes)
        return appender.forward_appended(flat, neutral, drive).squeeze(1)

    def logits(self, x: Tensor | Batch) -> Tensor:
        """Class scores from the classifier, shape ``(B, num_classes)``.

        A training batch's neutral-pass features, when the step computed them, are read
        as they are. Otherwise the features are never concatenated: each layer's
        activations meet their own block of the classifier's weights, and the blocks'
        scores add up.
        """
        device = inputs_of(x).device
        features = x.neutral_features if isinstance(x, Batch) else None
        if features is not None:
            with full_precision(device):
                logits: Tensor = self.classifier(features)
            return logits
        return self._logits_of(self.layer_activations(x))

    def _logits_of(self, activations: Sequence[Tensor]) -> Tensor:
        """The classifier's scores for every layer's activations, block by block."""
        weight = self.classifier.weight
        logits: Tensor = self.classifier.bias
        start = 0
        # The read-out is tiny next to the layers (ten outputs): float32 even under mixed
        # precision, where it costs less than casting the activations to bfloat16 would.
        with full_precision(weight.device):
            for h in activations:
                block = weight[:, start : start + h.shape[1]]
                logits = torch.addmm(logits, h, block.t())
                start += h.shape[1]
        return logits

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        if self.phase == "ff":
            return super().train_batch(batch, negatives)
        if self.phase == "classifier":
            return self._train_classifier(self.features(batch.x), batch.y)
        # One neutral pass before the FF layers update: the classifier learns from it, and
        # a sampler asking for the batch's logits (``neutral``) reads it from the batch.
        features = self.features(batch)
        batch.neutral_features = features
        ff_loss = super().train_batch(batch, negatives)
        return ff_loss + self._train_classifier(features, batch.y)

    def _train_classifier(self, features: Tensor, y: Tensor) -> Tensor:
        """One cross-entropy step of the classifier on (detached) features, in float32
        even under mixed precision (see :meth:`logits`)."""
        with full_precision(features.device):
            loss = F.cross_entropy(self.classifier(features), y)
        self.classifier_optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.classifier_optimizer.step()
        return loss.detach()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super().optimizers(), self.classifier_optimizer]

    # --- layer pipeline: the classifier trains on the stage holding the top layer ---------

    def train_stage(
        self,
        batch: Batch,
        negatives: NegativeSampler,
        received: Sequence[Tensor] | None,
        layers: range,
    ) -> StageStep:
        """A pipeline stage's share of :meth:`train_batch` in the current phase.

        Stages pass on ``[h]`` (FF layers alone), ``[h, a_0, a_1, ...]`` (joint: the
        training rows and every layer's neutral-label activations so far, computed
        before the layers update, as :meth:`features` is) or ``[a_0, a_1, ...]``
        (classifier alone); the top stage trains the classifier on all the activations.
        """
        if self.phase == "ff":
            return super().train_stage(batch, negatives, received, layers)
        both = self.phase == "both"
        below = [] if received is None else list(received[1:] if both else received)
        source: Tensor | Batch = batch if both else batch.x
        activations = below + self._activations_range(source, below[-1] if below else None, layers)
        loss = torch.zeros((), device=batch.x.device)
        send = activations
        if both:
            trained = FFNet.train_stage(
                self, batch, negatives, None if received is None else received[:1], layers
            )
            loss, send = trained.loss, [*trained.send, *activations]
        if layers.stop == len(self.layers):
            features = torch.cat(activations, dim=1)
            loss = loss + self._train_classifier(features, batch.y)
        return StageStep(send, loss)

    @torch.no_grad()
    def score_stage(
        self, x: Tensor, received: Sequence[Tensor] | None, layers: range, readout: str
    ) -> list[Tensor]:
        """``goodness``: TryAll as for FFNet; ``logits``: each stage adds its layers'
        neutral-label activations to what it received, and the top stage returns the
        classifier's scores, block by block as :meth:`logits` computes them."""
        if readout == "goodness":
            return super().score_stage(x, received, layers, readout)
        if readout != "logits":
            raise InvalidValueError("readout", readout, "'goodness' or 'logits'")
        below = [] if received is None else list(received)
        activations = below + self._activations_range(x, below[-1] if below else None, layers)
        if layers.stop < len(self.layers):
            return activations
        return [self._logits_of(activations)]

    def extra_summary(self) -> dict[str, Any]:
        return {
            **super().extra_summary(),
            "schedule": self.schedule,
            "ff_epochs": self.ff_epochs,
            "readout_lr": self.readout_lr,
        }


def ffc(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    layers: Sequence[int] = (2000, 2000),
    layer: str = "ffdense",
    optimizer: str = "adam",
    classifier_lr: float = 1e-3,
    schedule: str = "two-phase",
    ff_epochs: int | None = None,
    readout_lr: float | None = None,
    layer_range: Sequence[int] | str | None = None,
    label_scale: float = 1.0,
    label_scheme: str = "concat",
    **layer_options: Any,
) -> FFC:
    """FF+C: FF layers, then a linear classifier on their activations (neutral label).

    ``optimizer`` serves the layers and the classifier; every other option (``goodness``,
    ``lr``...) goes to each layer.
    """
    input_features = math.prod(input_shape)
    width = input_width(input_features, num_classes, label_scheme)
    return FFC(
        build_layer_stack(width, layers, layer, optimizer=optimizer, **layer_options),
        input_features,
        num_classes,
        classifier_lr=classifier_lr,
        optimizer=optimizer,
        schedule=schedule,
        ff_epochs=ff_epochs,
        readout_lr=readout_lr,
        layer_range=layer_range,
        label_scale=label_scale,
        label_scheme=label_scheme,
    )
