"""FFNet: a stack of FF layers, the label one-hot concatenated to the flattened input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.errors import InvalidValueError
from ffcore.interfaces import (
    Batch,
    FFLayer,
    FFModel,
    LabelAppender,
    LayerStepResult,
    NegativeBatch,
    NegativeSampler,
    StageCost,
    StageStep,
    inputs_of,
)
from ffcore.layers import (
    boolean,
    build_layer,
    choice,
    flatten_inputs,
    images_per_block,
    int_list,
    parse_layer_range,
)

LABEL_SCHEMES = ("concat", "overlay")

#: Rows (images times labels) per block when TryAll scores labels on the CPU.
CPU_LABEL_ROWS = 512


class FFNet(FFModel):
    """FF layers trained greedily per batch; TryAll over one-hot labels predicts.

    The input is flattened and the label's one-hot code (times ``label_scale``) is
    concatenated to it. Each layer trains on the detached output of the layer below: by
    default the output that layer computed in its own training step (before its update:
    one forward pass per layer), or with ``recompute=True`` the output recomputed after
    the update (FFLib 0.3.0's semantics, one extra forward pass per layer).
    """

    default_probe = "tryall"

    def __init__(
        self,
        layers: Sequence[FFLayer],
        input_features: int,
        num_classes: int,
        *,
        layer_range: Sequence[int] | str | None = None,
        label_scale: float = 1.0,
        recompute: bool = False,
        label_scheme: str = "concat",
    ) -> None:
        super().__init__()
        choice("label_scheme", label_scheme, LABEL_SCHEMES)
        if label_scheme == "overlay" and input_features < num_classes:
            raise InvalidValueError(
                "label_scheme",
                label_scheme,
                f"'concat': {input_features} inputs < {num_classes} labels",
            )
        self.label_scheme = label_scheme
        if not layers:
            raise InvalidValueError("layers", list(layers), "at least one layer")
        self.layers = nn.ModuleList(layers)
        self.input_features = input_features
        self.num_classes = num_classes
        self.label_scale = label_scale
        self.layer_range = parse_layer_range(layer_range, len(layers))
        self.recompute = boolean("recompute", recompute)

    def flatten(self, x: Tensor) -> Tensor:
        """``x`` as ``(B, input_features)``; a wrong width is a clear error."""
        return flatten_inputs(x, self.input_features, type(self).__name__)

    def _with_code(self, flat: Tensor, code: Tensor) -> Tensor:
        if self.label_scheme == "concat":
            return torch.cat((flat, code), dim=1)
        return torch.cat((code, flat[:, self.num_classes :]), dim=1)  # overlay

    def label_codes(self, y: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """The one-hot codes of labels ``y`` times ``label_scale``: ``(B, num_classes)``."""
        try:
            one_hot = F.one_hot(y, self.num_classes).to(dtype) * self.label_scale
        except RuntimeError:  # one_hot checks the range itself; say it in our words
            raise InvalidValueError(
                "labels", y.tolist()[:10], f"integers in 0..{self.num_classes - 1}"
            ) from None
        return one_hot

    def embed(self, x: Tensor, y: Tensor) -> Tensor:
        """The flattened input carrying the label's one-hot code (times ``label_scale``).

        ``label_scheme="concat"`` appends the code; ``"overlay"`` writes it over the first
        ``num_classes`` input features (Hinton's scheme for MNIST: the border pixels).
        """
        flat = self.flatten(x)
        return self._with_code(flat, self.label_codes(y, flat.dtype))

    def neutral_input(self, x: Tensor) -> Tensor:
        """The flattened input with an all-zero (neutral) label code."""
        flat = self.flatten(x)
        return self._with_code(flat, flat.new_zeros(flat.shape[0], self.num_classes))

    def _label_appender(self) -> LabelAppender | None:
        """The first layer, when it can take the image and the label code apart (as
        FFDense does) and so share the image's matmul across labels; else ``None``."""
        first = self.layers[0]
        if self.label_scheme == "concat" and isinstance(first, LabelAppender):
            return first
        return None

    def image_drive(self, batch: Batch) -> Tensor | None:
        """The first layer's ``W_x · x`` for a training batch, computed once per batch.

        The negative sampler (``hard``: every label), FF+C's neutral-label pass and the
        first layer's training step all start from it while the weights stay the same;
        the batch keeps it until :meth:`Batch.invalidate`. ``None`` when the first layer
        cannot share it.
        """
        first = self._label_appender()
        if first is None:
            return None
        if batch.image_drive is None:
            batch.image_drive = first.image_drive(self.flatten(batch.x))
        return batch.image_drive

    def _drive_of(self, source: Tensor | Batch) -> Tensor | None:
        """A training batch's shared image drive; ``None`` for plain inputs (then each
        pass computes it with the current weights)."""
        return self.image_drive(source) if isinstance(source, Batch) else None

    def _first_step(
        self, first: LabelAppender, batch: Batch, labels: Tensor, num_pos: int
    ) -> tuple[LayerStepResult, Tensor | None]:
        """The first layer's step on the batch's images tiled with ``labels``, its input
        shared.

        Returns the step's result and, with ``recompute`` and more layers above, the first
        layer's output recomputed after its update.
        """
        flat = self.flatten(batch.x)
        tiled, order = copy_major(labels, num_pos)
        codes = self.label_codes(tiled, flat.dtype)
        result = first.train_tiled(flat, codes, num_pos, self.image_drive(batch), order)
        if not self.recompute or len(self.layers) == 1:
            return result, None
        with torch.no_grad():
            return result, first.forward_tiled(flat, codes, order=order)

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        return self._train_layers(batch, negatives(batch, self))

    def _train_layers(self, batch: Batch, negative: NegativeBatch) -> Tensor:
        h, labels = self._first_input(batch, negative)
        return self._train_range(batch, h, labels, range(len(self.layers)))[1]

    def _first_input(self, batch: Batch, negative: NegativeBatch) -> tuple[Tensor | None, Tensor]:
        """The first layer's input rows (positives, then negatives) and every row's label.

        The rows are ``None`` when the negatives are the positives' images with other
        labels and the first layer can share the image's part of its work between them
        (random, inverse, hard and neutral negatives with FFDense): the first step then reads the
        images and the labels apart (see :meth:`_first_step`).
        """
        labels = torch.cat((batch.y, negative.y))
        if negative.same_inputs and self._label_appender() is not None:
            return None, labels
        return self.embed(torch.cat((batch.x, negative.x)), labels), labels

    def _train_range(
        self, batch: Batch, h: Tensor | None, labels: Tensor | None, layers: range
    ) -> tuple[Tensor, Tensor]:
        """Train ``layers`` in turn, from ``h``, the input of the first of them (``None``:
        the first layer's shared-image step with ``labels``); return what the top one
        passes on and the summed loss. One process trains every layer; a pipeline stage
        its own run of them (see :meth:`train_stage`)."""
        num_pos = batch.y.shape[0]
        total = torch.zeros((), device=batch.x.device)
        for index in layers:
            layer = self.layers[index]
            assert isinstance(layer, FFLayer)
            if h is None:
                appender = self._label_appender()
                assert appender is not None and labels is not None
                result, recomputed = self._first_step(appender, batch, labels, num_pos)
            else:
                result, recomputed = layer.train_joint(h, num_pos), None
                if self.recompute and index + 1 < len(self.layers):
                    with torch.no_grad():  # FFLib 0.3.0: the next layer sees post-update outputs
                        recomputed = layer(h)
            if index == 0:
                batch.invalidate()  # the first layer has updated: the batch's cache is stale
            total = total + result.loss
            h = result.h if recomputed is None else recomputed
        assert h is not None
        return h, total

    # --- layer pipeline (see ffcore.interfaces.PipelineModel) ---------------------------

    def pipeline_layers(self) -> Sequence[nn.Module]:
        """The FF layers, bottom first: a pipeline stage trains a contiguous run of them."""
        return list(self.layers)

    def can_defer_steps(self) -> bool:
        """True unless ``recompute``: then a layer's output is computed again after its
        update, for the layer above (see :class:`~ffcore.interfaces.DeferrableSteps`)."""
        return not self.recompute

    def pipeline_costs(self, batches: StageCost) -> list[float]:
        """Each layer's cost per training batch in multiply-add equivalents.

        The matrix products of the forward pass and the weight gradient (four per input
        row and parameter; the first layer multiplies each image once when the negatives
        share it), plus an Adam update of about 50 and element-wise work of about 20 per
        output value (what they cost next to a matrix product on a CPU core).
        """
        positives = batches.positives
        rows = positives * (1 + batches.negatives_per_positive)
        shared = batches.same_inputs and self._label_appender() is not None
        costs: list[float] = []
        for index, layer in enumerate(self.layers):
            parameters = sum(p.numel() for p in layer.parameters())
            width = int(getattr(layer, "out_features", 0)) or int(math.sqrt(parameters))
            products = 4.0 * (positives if index == 0 and shared else rows) * parameters
            if self.recompute and index + 1 < len(self.layers):
                products *= 1.5  # one more forward product
            costs.append(products + 50.0 * parameters + 20.0 * rows * width)
        return costs

    def train_stage(
        self,
        batch: Batch,
        negatives: NegativeSampler,
        received: Sequence[Tensor] | None,
        layers: range,
    ) -> StageStep:
        """Train ``layers`` on ``batch``: the first stage draws the negatives and embeds
        the labels, a later one starts from the rows the stage below sent (``[h]``)."""
        if received is None:
            h, labels = self._first_input(batch, negatives(batch, self))
        else:
            h, labels = received[0], None
        top, loss = self._train_range(batch, h, labels, layers)
        return StageStep([top], loss)

    @torch.no_grad()
    def score_stage(
        self, x: Tensor, received: Sequence[Tensor] | None, layers: range, readout: str
    ) -> list[Tensor]:
        """TryAll on a pipeline stage: ``layers``' goodness for every label of ``x``.

        Receives and sends ``[h, scores]``: the rows (every image with every label) of
        the layer below and the goodness summed so far over ``layer_range``; once no
        layer above counts, only ``[scores]``. Scored in the same blocks of images as
        :meth:`goodness_per_label`, so the sums are the same.
        """
        if readout != "goodness":
            raise InvalidValueError("readout", readout, "'goodness' (TryAll) for an FFNet")
        batch, classes = x.shape[0], self.num_classes
        start, stop = self.layer_range
        own = range(layers.start, min(layers.stop, stop))
        total = x.new_zeros(batch, classes) if received is None else received[-1]
        if not own:
            return [total]
        rows = received[0] if received is not None and len(received) == 2 else None
        per_block = images_per_block(x, classes, CPU_LABEL_ROWS)
        block_scores: list[list[Tensor]] = []
        tops: list[Tensor] = []
        for first in range(0, batch, per_block):
            part = x[first : first + per_block]
            below = None if rows is None else rows[first * classes : (first + len(part)) * classes]
            scores, top = self._label_scores_block(part, None, own, below)
            block_scores.append(scores)
            tops.append(top)
        for index, layer_scores in zip(own, zip(*block_scores, strict=True), strict=True):
            if index >= start:
                total = total + torch.cat(layer_scores)
        return [torch.cat(tops), total] if own.stop < stop else [total]

    def forward(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Every layer's activations for inputs ``x`` with labels ``y``."""
        h = self.embed(x, y)
        activations: list[Tensor] = []
        for layer in self.layers:
            h = layer(h)
            activations.append(h)
        return activations

    def goodness(self, x: Tensor, y: Tensor) -> Tensor:
        """Signed goodness summed over ``layer_range``, for inputs ``x`` with labels ``y``."""
        start, stop = self.layer_range
        total = torch.zeros(x.shape[0], device=x.device)
        h = self.embed(x, y)
        for index, layer in enumerate(self.layers[:stop]):
            assert isinstance(layer, FFLayer)
            h = layer(h)
            if index >= start:
                total = total + layer.score(h)
        return total

    def _label_scores(self, source: Tensor | Batch, stop: int) -> list[Tensor]:
        """Signed goodness ``(B, num_classes)`` of layers ``0..stop-1`` for every label.

        Batched over labels: all ``B * num_classes`` rows at once on accelerators; on the
        CPU in blocks of about :data:`CPU_LABEL_ROWS` rows, whose activations stay in the
        cache from one operation to the next, instead of travelling through memory.
        """
        x, drive = inputs_of(source), self._drive_of(source)
        per_block = images_per_block(x, self.num_classes, CPU_LABEL_ROWS)
        layers = range(stop)
        if x.shape[0] <= per_block:
            return self._label_scores_block(x, drive, layers)[0]
        parts = torch.split(x, per_block)
        drives: list[Tensor | None] = (
            [None] * len(parts) if drive is None else list(torch.split(drive, per_block))
        )
        blocks = [
            self._label_scores_block(part, part_drive, layers)[0]
            for part, part_drive in zip(parts, drives, strict=True)
        ]
        return [torch.cat(layer_scores) for layer_scores in zip(*blocks, strict=True)]

    def _label_scores_block(
        self, x: Tensor, drive: Tensor | None, layers: range, h: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """:meth:`_label_scores` of ``layers`` in one batch of ``B * num_classes`` rows,
        and the top one's activations (the rows, image-major: row ``i * num_classes + c``
        is image ``i`` with label ``c``).

        When the first layer can share the image's part of its matmul across labels
        (``forward_appended``, as FFDense does), the image is multiplied once instead of
        once per label; ``drive`` is that part when already computed. ``h`` is the rows
        of the layer below ``layers`` when they do not start at the first layer.
        """
        batch, classes = x.shape[0], self.num_classes
        scores: list[Tensor] = []
        for index in layers:
            layer = self.layers[index]
            assert isinstance(layer, FFLayer)
            if index == 0:
                h = self._first_label_rows(x, drive)
            else:
                assert h is not None
                h = layer(h)
            scores.append(layer.score(h).view(batch, classes))
        assert h is not None
        return scores, h

    def _first_label_rows(self, x: Tensor, drive: Tensor | None) -> Tensor:
        """The first layer's activations for every image of ``x`` with every label."""
        batch, classes = x.shape[0], self.num_classes
        appender = self._label_appender()
        if appender is None:
            labels = torch.arange(classes, device=x.device).repeat(batch)
            h: Tensor = self.layers[0](self.embed(x.repeat_interleave(classes, dim=0), labels))
            return h
        flat = self.flatten(x)
        codes = torch.eye(classes, dtype=flat.dtype, device=flat.device) * self.label_scale
        return appender.forward_appended(flat, codes, drive).reshape(batch * classes, -1)

    @torch.no_grad()
    def layer_goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """``(num_layers, B, num_classes)``: each layer's signed goodness for every label.

        What each layer alone would predict (TryAll on one layer), for diagnostics.
        """
        return torch.stack(self._label_scores(x, len(self.layers)))

    @torch.no_grad()
    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """``(B, num_classes)``: the goodness of ``x`` paired with every label at once."""
        start, stop = self.layer_range
        scores = self._label_scores(x, stop)[start:]
        return sum(scores[1:], scores[0])  # layer by layer, bottom first

    def extra_summary(self) -> dict[str, Any]:
        return {"layer_range": list(self.layer_range)}


def copy_major(labels: Tensor, num_pos: int) -> tuple[Tensor, Tensor | None]:
    """``labels`` (positives, then ``k`` negatives per positive, sample-major) reordered
    copy by copy, as a tiled product pairs row ``r`` with image ``r % B``, and the row
    order that takes the tiled rows back to ``labels``' order (``None``: already tiled,
    ``k <= 1``)."""
    if num_pos <= 0 or labels.shape[0] % num_pos:
        raise InvalidValueError(
            "negative labels",
            labels.shape[0] - num_pos,
            f"the same number of negatives for each of the {num_pos} positives",
        )
    per_positive = labels.shape[0] // num_pos - 1
    if per_positive <= 1:
        return labels, None
    negatives = labels[num_pos:].view(num_pos, per_positive)
    tiled = torch.cat((labels[:num_pos], negatives.t().reshape(-1)))
    sample = torch.arange(num_pos, device=labels.device).unsqueeze(1)
    copy = torch.arange(per_positive, device=labels.device).unsqueeze(0)
    back = num_pos + copy * num_pos + sample  # sample i's j-th negative: tiled row B + jB + i
    order = torch.cat((torch.arange(num_pos, device=labels.device), back.reshape(-1)))
    return tiled, order


def input_width(input_features: int, num_classes: int, label_scheme: str) -> int:
    """The first layer's input width under a label scheme."""
    return input_features + num_classes if label_scheme == "concat" else input_features


def build_layer_stack(
    in_features: int, widths: Sequence[int], layer: str, **layer_options: Any
) -> list[FFLayer]:
    """FF layers of the given ``widths``, each fed by the one below, built by name."""
    stack: list[FFLayer] = []
    for width in int_list("layers", widths):
        stack.append(
            build_layer(layer, in_features=in_features, out_features=width, **layer_options)
        )
        in_features = width
    return stack


def ffnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    layers: Sequence[int] = (2000, 2000),
    layer: str = "ffdense",
    layer_range: Sequence[int] | str | None = None,
    label_scale: float = 1.0,
    recompute: bool = False,
    label_scheme: str = "concat",
    **layer_options: Any,
) -> FFNet:
    """Stack of FF layers, label one-hot appended to the input, TryAll prediction.

    Every other option (``activation``, ``goodness``, ``lr``...) goes to each layer.
    """
    input_features = math.prod(input_shape)
    width = input_width(input_features, num_classes, label_scheme)
    return FFNet(
        build_layer_stack(width, layers, layer, **layer_options),
        input_features,
        num_classes,
        layer_range=layer_range,
        label_scale=label_scale,
        recompute=recompute,
        label_scheme=label_scheme,
    )
