"""FFNet: a stack of FF layers, the label one-hot concatenated to the flattened input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore import create_layer, hookimpl
from ffcore.errors import InvalidValueError
from ffcore.hookspecs import Register
from ffcore.interfaces import FFLayer, FFModel, LayerStepResult, NegativeBatch, NegativeSampler
from ffplugins.tryall import images_per_block


def parse_layer_range(value: Sequence[int] | str | None, num_layers: int) -> tuple[int, int]:
    """``[start, stop)`` of the layers whose goodness predicts (Python slice rules).

    Accepts ``None`` (all layers), a pair ``[start, stop]`` or a string ``"start:stop"``
    where either end may be left out (``"1:"`` means every layer but the first).
    """
    if value is None:
        return 0, num_layers
    parts: list[int | None]
    try:
        if isinstance(value, str):
            start_text, sep, stop_text = value.partition(":")
            if not sep:
                raise ValueError(value)
            parts = [int(t) if t.strip() else None for t in (start_text, stop_text)]
        else:
            parts = list(value)
            if len(parts) != 2 or any(
                p is not None and (isinstance(p, bool) or not isinstance(p, int)) for p in parts
            ):
                raise ValueError(value)
    except (TypeError, ValueError):
        raise InvalidValueError(
            "layer_range", value, "'start:stop' or [start, stop] (Python slice rules)"
        ) from None
    start, stop, _ = slice(parts[0], parts[1]).indices(num_layers)
    if start >= stop:
        raise InvalidValueError(
            "layer_range", value, f"a non-empty range of the {num_layers} layers"
        )
    return start, stop


LABEL_SCHEMES = ("concat", "overlay")

#: Rows (images times labels) per block when TryAll scores labels on the CPU.
CPU_LABEL_ROWS = 512


@runtime_checkable
class LabelAppender(Protocol):
    """A first layer that takes an image and a label code apart (FFDense does): the
    image's share of its matmul, ``W_x · x``, is then computed once for every label."""

    def image_drive(self, x: Tensor) -> Tensor:
        """``W_x · x`` for images ``x``: ``(B, out)``, no gradient."""

    def forward_appended(self, x: Tensor, tails: Tensor, drive: Tensor | None = None) -> Tensor:
        """The output for every image with every code: ``(B, T, out)``."""

    def forward_tiled(self, x: Tensor, tails: Tensor, drive: Tensor | None = None) -> Tensor:
        """The output for image ``r % B`` with code ``r``, for each row ``r`` of ``tails``."""

    def train_tiled(
        self, x: Tensor, tails: Tensor, num_pos: int, drive: Tensor | None = None
    ) -> LayerStepResult:
        """The layer's training step on ``forward_tiled``'s rows (positives first)."""


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
        if label_scheme not in LABEL_SCHEMES:
            raise InvalidValueError(
                "label_scheme", label_scheme, f"one of {', '.join(LABEL_SCHEMES)}"
            )
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
        if not isinstance(recompute, bool):
            raise InvalidValueError("recompute", recompute, "true or false")
        self.recompute = recompute
        #: The training batch whose first-layer image drive may be cached, and the drive.
        self._batch: Tensor | None = None
        self._drive: Tensor | None = None

    def flatten(self, x: Tensor) -> Tensor:
        """``x`` as ``(B, input_features)``; a wrong width is a clear error."""
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.input_features:
            raise InvalidValueError(
                "input shape",
                tuple(x.shape),
                f"{self.input_features} features per sample for this {type(self).__name__}",
            )
        return flat

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

    def _open_batch(self, x: Tensor) -> bool:
        """Start caching the first layer's image drive for training batch ``x``; ``False``
        when a caller (a subclass's ``train_batch``) already did."""
        if self._batch is x:
            return False
        self._batch, self._drive = x, None
        return True

    def _close_batch(self) -> None:
        """Forget the batch's image drive (stale once the first layer has updated)."""
        self._batch, self._drive = None, None

    def _batch_drive(self, x: Tensor) -> Tensor | None:
        """The first layer's ``W_x · x`` for the batch being trained, computed once.

        The negative sampler (``hard``: every label), FF+C's neutral-label pass and the
        first layer's training step all start from it, while the weights stay the same.
        ``None`` outside a training batch or when the first layer cannot share it.
        """
        first = self._label_appender()
        if self._batch is not x or first is None:
            return None
        if self._drive is None:
            self._drive = first.image_drive(self.flatten(x))
        return self._drive

    def _first_step(
        self, first: LabelAppender, x: Tensor, labels: Tensor, num_pos: int
    ) -> tuple[LayerStepResult, Tensor | None]:
        """The first layer's step on images ``x`` tiled with ``labels``, its input shared.

        Returns the step's result and, with ``recompute`` and more layers above, the first
        layer's output recomputed after its update.
        """
        flat = self.flatten(x)
        codes = self.label_codes(labels, flat.dtype)
        result = first.train_tiled(flat, codes, num_pos, self._batch_drive(x))
        if not self.recompute or len(self.layers) == 1:
            return result, None
        with torch.no_grad():
            return result, first.forward_tiled(flat, codes)

    def train_batch(self, x: Tensor, y: Tensor, negatives: NegativeSampler) -> Tensor:
        opened = self._open_batch(x)
        try:
            negative = negatives(x, y, self.num_classes, self)
            return self._train_layers(x, y, negative)
        finally:
            if opened:
                self._close_batch()

    def _train_layers(self, x: Tensor, y: Tensor, negative: NegativeBatch) -> Tensor:
        num_pos = x.shape[0]
        labels = torch.cat((y, negative.y))
        # Negatives that are the positives' images with other labels share their image's
        # part of the first layer's work (random, hard and neutral negatives do).
        appender = self._label_appender() if negative.x is x else None
        h = None if appender is not None else self.embed(torch.cat((x, negative.x)), labels)
        total = torch.zeros((), device=x.device)
        observer = self.observer
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, FFLayer)
            if h is None:
                assert appender is not None
                result, recomputed = self._first_step(appender, x, labels, num_pos)
            else:
                result, recomputed = layer.train_joint(h, num_pos), None
                if self.recompute and index + 1 < len(self.layers):
                    with torch.no_grad():  # FFLib 0.3.0: the next layer sees post-update outputs
                        recomputed = layer(h)
            if index == 0:
                self._close_batch()  # the first layer has updated: its image drive is stale
            if observer is not None:
                observer.layer_trained(index, layer, result)
            total = total + result.loss
            h = result.h if recomputed is None else recomputed
        return total

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

    def _label_scores(self, x: Tensor, stop: int) -> list[Tensor]:
        """Signed goodness ``(B, num_classes)`` of layers ``0..stop-1`` for every label.

        Batched over labels: all ``B * num_classes`` rows at once on accelerators; on the
        CPU in blocks of about :data:`CPU_LABEL_ROWS` rows, whose activations stay in the
        cache from one operation to the next (at 2x2000, TryAll ran 8-20% faster in
        A/B runs than on 10,000-row blocks).
        """
        drive = self._batch_drive(x)
        per_block = images_per_block(x, self.num_classes, CPU_LABEL_ROWS)
        if x.shape[0] <= per_block:
            return self._label_scores_block(x, drive, stop)
        parts = torch.split(x, per_block)
        drives: list[Tensor | None] = (
            [None] * len(parts) if drive is None else list(torch.split(drive, per_block))
        )
        blocks = [
            self._label_scores_block(part, part_drive, stop)
            for part, part_drive in zip(parts, drives, strict=True)
        ]
        return [torch.cat(layer_scores) for layer_scores in zip(*blocks, strict=True)]

    def _label_scores_block(self, x: Tensor, drive: Tensor | None, stop: int) -> list[Tensor]:
        """:meth:`_label_scores` in one batch of ``B * num_classes`` rows.

        When the first layer can share the image's part of its matmul across labels
        (``forward_appended``, as FFDense does), the image is multiplied once instead of
        once per label; ``drive`` is that part when already computed.
        """
        batch, classes = x.shape[0], self.num_classes
        appender = self._label_appender()
        if appender is None:
            labels = torch.arange(classes, device=x.device).repeat(batch)
            h = self.layers[0](self.embed(x.repeat_interleave(classes, dim=0), labels))
        else:
            flat = self.flatten(x)
            codes = torch.eye(classes, dtype=flat.dtype, device=flat.device) * self.label_scale
            h = appender.forward_appended(flat, codes, drive)
            h = h.reshape(batch * classes, -1)
        scores: list[Tensor] = []
        for index, layer in enumerate(self.layers[:stop]):
            assert isinstance(layer, FFLayer)
            if index > 0:
                h = layer(h)
            scores.append(layer.score(h).view(batch, classes))
        return scores

    @torch.no_grad()
    def layer_goodness_per_label(self, x: Tensor) -> Tensor:
        """``(num_layers, B, num_classes)``: each layer's signed goodness for every label.

        What each layer alone would predict (TryAll on one layer), for diagnostics.
        """
        return torch.stack(self._label_scores(x, len(self.layers)))

    @torch.no_grad()
    def goodness_per_label(self, x: Tensor) -> Tensor:
        """``(B, num_classes)``: the goodness of ``x`` paired with every label at once."""
        start, stop = self.layer_range
        scores = self._label_scores(x, stop)[start:]
        total = scores[0]
        for score in scores[1:]:
            total = total + score
        return total

    def extra_summary(self) -> dict[str, Any]:
        return {"layer_range": list(self.layer_range)}


def input_width(input_features: int, num_classes: int, label_scheme: str) -> int:
    """The first layer's input width under a label scheme."""
    return input_features + num_classes if label_scheme == "concat" else input_features


def build_layer_stack(
    in_features: int, widths: Sequence[int], layer: str, **layer_options: Any
) -> list[FFLayer]:
    """FF layers of the given ``widths``, each fed by the one below, built by name."""
    sizes = list(widths)
    if not sizes or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in sizes):
        raise InvalidValueError("layers", widths, "a non-empty list of positive integers")
    stack: list[FFLayer] = []
    for width in sizes:
        stack.append(
            create_layer(layer, in_features=in_features, out_features=width, **layer_options)
        )
        in_features = width
    return stack


def ffnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    layers: Sequence[int] = (2000, 2000),
    layer: str = "ffdense",
    activation: str = "relu",
    norm: str = "rms",
    goodness: str = "sum-squares",
    loss: str = "softplus-threshold",
    threshold: float | None = None,
    maximise: bool = True,
    optimizer: str = "adam",
    lr: float = 3e-3,
    layer_range: Sequence[int] | str | None = None,
    label_scale: float = 1.0,
    recompute: bool = False,
    label_scheme: str = "concat",
    peer_norm: float = 0.0,
) -> FFNet:
    """Stack of FF layers, label one-hot appended to the input, TryAll prediction."""
    input_features = math.prod(input_shape)
    ff_layers = build_layer_stack(
        input_width(input_features, num_classes, label_scheme),
        layers,
        layer,
        activation=activation,
        norm=norm,
        goodness=goodness,
        loss=loss,
        threshold=threshold,
        maximise=maximise,
        optimizer=optimizer,
        lr=lr,
        **({"peer_norm": peer_norm} if peer_norm else {}),
    )
    return FFNet(
        ff_layers,
        input_features,
        num_classes,
        layer_range=layer_range,
        label_scale=label_scale,
        recompute=recompute,
        label_scheme=label_scheme,
    )


@hookimpl
def fflib_register_models(register: Register) -> None:
    register("ffnet", ffnet)
