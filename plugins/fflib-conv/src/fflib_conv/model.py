"""FFCNN: convolutional FF layers, then optional fully connected FF layers.

The label enters as extra input channels: ``num_classes`` constant planes of the image's
size, the label's plane filled with ``label_scale`` and the others with zeros (a one-hot
code at every pixel). The first dense layer reads the last conv layer's output flattened,
with the one-hot code appended again (``dense_label``), as FFNet's first layer reads the
image. Each layer trains greedily on the detached output of the layer below; TryAll
scores every label, and an FF+C style linear classifier on the layers' activations for a
neutral (all-zero) label gives ``--probe classifier`` its logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch, FFLayer, FFModel, NegativeSampler, inputs_of
from ffcore.layers import (
    boolean,
    build_layer,
    choice,
    int_list,
    non_negative_int,
    number,
    parse_layer_range,
    positive_int,
    positive_number,
    tracing,
)
from ffcore.optim import check_lr, make_optimizer
from torch import Tensor, nn

from fflib_conv.augment import Augmentation
from fflib_conv.competitive import ChannelCompetitiveCNN
from fflib_conv.layer import NORM_OVER, PADDINGS, FFConv2d, conv_output_size, ffconv2d

SCHEDULES = ("joint", "two-phase")


def per_layer(field: str, value: int | Sequence[int], count: int) -> list[int]:
    """One positive integer per conv layer, from a single value or a list of ``count``."""
    expected = f"a positive integer or a list of {count} (one per conv layer)"
    if isinstance(value, int):
        return [positive_int(field, value, expected)] * count
    values = int_list(field, value, expected=expected)
    if len(values) != count:
        raise InvalidValueError(field, value, expected)
    return values


def image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` from a data set's input shape (``(H, W)`` means one channel)."""
    expected = "an image shape (C, H, W) or (H, W) for ffcnn"
    shape = int_list("input_shape", list(input_shape), expected=expected)
    if len(shape) == 2:
        shape = [1, *shape]
    if len(shape) != 3:
        raise InvalidValueError("input_shape", list(input_shape), expected)
    return shape[0], shape[1], shape[2]


class FFCNN(FFModel):
    """FF conv layers (then FF dense layers) on the image with one-hot label channels.

    Layers train greedily per batch, each on the detached output of the one below (the
    last conv layer's output is flattened for the first dense layer, and with
    ``dense_label`` the label code is appended to it). ``goodness_per_label``
    (TryAll, the ``hard`` sampler) scores every label in one pass; the first layer shares
    its work between labels (see :meth:`FFConv2d.forward_codes`). The classifier head is
    ``nn.Linear`` on every layer's activations for a neutral label, trained with
    cross-entropy by its own optimizer: every batch on detached features (``joint``) or
    after ``ff_epochs`` epochs of FF training (``two-phase``).
    """

    default_probe = "tryall"
    #: One-hot codes times ``label_scale``, one row per label (a buffer, not saved).
    label_codes: Tensor
    #: Activations per chunk of ``goodness_per_label`` (bounds its memory) on the CPU;
    #: other devices take eight times as many.
    eval_chunk_elements = 2**24

    def __init__(
        self,
        convs: Sequence[FFConv2d],
        dense: Sequence[FFLayer],
        input_shape: Sequence[int],
        num_classes: int,
        *,
        layer_range: Sequence[int] | str | None = None,
        label_scale: float = 1.0,
        dense_label: bool = True,
        classifier_lr: float = 1e-3,
        optimizer: str = "adam",
        schedule: str = "joint",
        ff_epochs: int | None = None,
        augment: str | None = None,
    ) -> None:
        super().__init__()
        if not convs:
            raise InvalidValueError("layers", [], "at least one conv layer")
        self.input_shape = image_shape(input_shape)
        self.num_classes = positive_int("num_classes", num_classes)
        if convs[0].in_channels != self.input_shape[0] + num_classes:
            raise InvalidValueError(
                "layers",
                convs[0].in_channels,
                f"a first conv layer with {self.input_shape[0] + num_classes} input channels "
                "(image channels + one per label)",
            )
        self.label_scale = positive_number("label_scale", label_scale)
        self.dense_label = boolean("dense_label", dense_label)
        self.layers = nn.ModuleList([*convs, *dense])
        self.num_conv = len(convs)
        self.layer_range = parse_layer_range(layer_range, len(self.layers))
        self.schedule = choice("schedule", schedule, SCHEDULES)
        self.ff_epochs = (
            None
            if ff_epochs is None
            else non_negative_int("ff_epochs", ff_epochs, "a non-negative integer or None")
        )
        with torch.no_grad():
            feature_count = self.features(torch.zeros(1, *self.input_shape)).shape[1]
        self.classifier = nn.Linear(feature_count, num_classes)
        self.classifier_optimizer = make_optimizer(
            optimizer, self.classifier.parameters(), check_lr(classifier_lr, "classifier_lr")
        )
        #: What the current epoch trains: "ff", "classifier" or "both".
        self.phase = "both" if schedule == "joint" else "ff"
        self.register_buffer("label_codes", torch.eye(num_classes) * self.label_scale, False)
        #: The augmentation of training batches (see :class:`Augmentation`).
        self.augmentation = Augmentation.parse(augment)

    # --- inputs -----------------------------------------------------------------------

    def image(self, x: Tensor) -> Tensor:
        """``x`` as ``(B, C, H, W)``; another shape is a clear error."""
        if tuple(x.shape[1:]) != self.input_shape:
            if (
                x.dim() == 3
                and self.input_shape[0] == 1
                and tuple(x.shape[1:]) == self.input_shape[1:]
            ):
                return x.unsqueeze(1)
            raise InvalidValueError(
                "input shape",
                tuple(x.shape),
                f"(batch, {', '.join(map(str, self.input_shape))}) for this FFCNN",
            )
        return x

    def label_planes(self, code: Tensor, height: int, width: int) -> Tensor:
        """Codes ``(B, K)`` as ``K`` constant planes per sample: ``(B, K, H, W)``."""
        return code[:, :, None, None].expand(*code.shape, height, width)

    def label_code(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """The labels' one-hot codes times ``label_scale``, shape ``(B, num_classes)``."""
        try:
            return F.one_hot(y, self.num_classes).to(dtype) * self.label_scale
        except RuntimeError:  # one_hot checks the range itself; say it in our words
            raise InvalidValueError(
                "labels", y.tolist()[:10], f"integers in 0..{self.num_classes - 1}"
            ) from None

    def with_code(self, image: Tensor, code: Tensor) -> Tensor:
        """``image`` with each row's code appended as constant channels."""
        planes = self.label_planes(code.to(image.dtype), *image.shape[2:])
        return torch.cat((image, planes), dim=1)

    def embed(self, x: Tensor, y: Tensor) -> Tensor:
        """The image with its label's one-hot planes appended as channels."""
        image = self.image(x)
        return self.with_code(image, self.label_code(y, image.dtype))

    def neutral_code(self, x: Tensor) -> Tensor:
        """All-zero (neutral) label codes for the rows of ``x``."""
        return x.new_zeros(x.shape[0], self.num_classes)

    def neutral_input(self, x: Tensor) -> Tensor:
        """The image with all-zero (neutral) label planes appended."""
        image = self.image(x)
        return self.with_code(image, self.neutral_code(image))

    def layer_input(self, index: int, h: Tensor, code: Tensor) -> Tensor:
        """What layer ``index`` reads from the output ``h`` of the layer below.

        Conv layers read ``h`` as it is; dense layers read it flattened, and the first
        dense layer (with ``dense_label``) with the rows' label ``code`` appended, as in
        FFNet's input.
        """
        if index < self.num_conv:
            return h
        flat = h.reshape(h.shape[0], -1)
        if index == self.num_conv and self.dense_label:
            return torch.cat((flat, code.to(flat.dtype)), dim=1)
        return flat

    # --- training ---------------------------------------------------------------------

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        if self.schedule == "joint":
            self.phase = "both"
            return
        ff_epochs = self.ff_epochs if self.ff_epochs is not None else max(1, epochs // 2)
        self.phase = "ff" if epoch < ff_epochs else "classifier"

    def train_ff(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """One greedy FF step of every layer; the summed layer losses."""
        negative = negatives(batch, self)
        image = self.image(batch.x)
        code_pos = self.label_code(batch.y, image.dtype)
        code_neg = self.label_code(negative.y, image.dtype)
        h_pos = self.with_code(image, code_pos)
        h_neg = self.with_code(self.image(negative.x), code_neg)
        total = torch.zeros((), device=image.device)
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, FFLayer)
            result = layer.train_step(
                self.layer_input(index, h_pos, code_pos), self.layer_input(index, h_neg, code_neg)
            )
            total = total + result.loss
            h_pos, h_neg = result.h_pos, result.h_neg
        return total

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        if self.training and self.augmentation:
            batch = Batch(self.augmentation(self.image(batch.x)), batch.y)
        total = torch.zeros((), device=batch.x.device)
        if self.phase in ("ff", "both"):
            total = total + self.train_ff(batch, negatives)
        if self.phase in ("classifier", "both"):
            loss = F.cross_entropy(self.logits(batch.x), batch.y)
            self.classifier_optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            self.classifier_optimizer.step()
            total = total + loss.detach()
        return total

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super().optimizers(), self.classifier_optimizer]

    # --- reading out ------------------------------------------------------------------

    def forward(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Every layer's activations for images ``x`` with labels ``y``."""
        image = self.image(x)
        code = self.label_code(y, image.dtype)
        h = self.with_code(image, code)
        activations: list[Tensor] = []
        for index, layer in enumerate(self.layers):
            h = layer(self.layer_input(index, h, code))
            activations.append(h)
        return activations

    def goodness(self, x: Tensor, y: Tensor) -> Tensor:
        """Signed goodness summed over ``layer_range``, for images ``x`` with labels ``y``."""
        start, stop = self.layer_range
        total = torch.zeros(x.shape[0], device=x.device)
        image = self.image(x)
        code = self.label_code(y, image.dtype)
        h = self.with_code(image, code)
        for index, layer in enumerate(self.layers[:stop]):
            assert isinstance(layer, FFLayer)
            h = layer(self.layer_input(index, h, code))
            if index >= start:
                total = total + layer.score(h)
        return total

    def chunk_size(self, device: torch.device) -> int:
        """Samples per chunk of ``goodness_per_label``, from the widest conv activation."""
        widest = 0
        size: tuple[int, int] | None = self.input_shape[1:]
        for layer in self.layers[: self.num_conv]:
            assert isinstance(layer, FFConv2d) and size is not None
            unpooled = conv_output_size(size, layer.kernel_size, layer.padding, 1)
            assert unpooled is not None
            widest = max(widest, layer.out_channels * unpooled[0] * unpooled[1])
            size = layer.output_size(size)
        budget = self.eval_chunk_elements * (1 if device.type == "cpu" else 8)
        return max(1, budget // max(1, widest * self.num_classes))

    def chunks(self, image: Tensor) -> tuple[Tensor, ...]:
        """``image`` in chunks of :meth:`chunk_size` samples; one chunk when traced (a graph
        with a dynamic batch cannot hold a batch-dependent number of chunks)."""
        if tracing():
            return (image,)
        return torch.split(image, self.chunk_size(image.device))

    @torch.no_grad()
    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """``(B, num_classes)``: the signed goodness of ``x`` paired with every label."""
        image = self.image(inputs_of(x))
        start, stop = self.layer_range
        first = self.layers[0]
        assert isinstance(first, FFConv2d)
        codes = self.label_codes.to(image.dtype)
        chunks: list[Tensor] = []
        for part in self.chunks(image):
            h = first.forward_codes(part, codes, equal_lengths=True)  # one-hot times a scale
            row_codes = codes.repeat(part.shape[0], 1)  # sample-major, as h's rows
            total = first.score(h) if start == 0 else torch.zeros(h.shape[0], device=h.device)
            for index in range(1, stop):
                layer = self.layers[index]
                assert isinstance(layer, FFLayer)
                h = layer(self.layer_input(index, h, row_codes))
                if index >= start:
                    total = total + layer.score(h)
            chunks.append(total.view(part.shape[0], self.num_classes))
        return torch.cat(chunks)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Every layer's activations for ``x`` with a neutral label, flattened and joined."""
        image = self.image(x)
        code = self.neutral_code(image)
        h = self.with_code(image, code)
        activations: list[Tensor] = []
        for index, layer in enumerate(self.layers):
            h = layer(self.layer_input(index, h, code))
            activations.append(h.reshape(h.shape[0], -1))
        return torch.cat(activations, dim=1)

    def logits(self, x: Tensor | Batch) -> Tensor:
        """Class scores from the classifier head, shape ``(B, num_classes)``."""
        logits: Tensor = self.classifier(self.features(inputs_of(x)))
        return logits

    def extra_summary(self) -> dict[str, Any]:
        return {
            "layer_range": list(self.layer_range),
            "conv_layers": self.num_conv,
            "schedule": self.schedule,
            "ff_epochs": self.ff_epochs,
        }


#: What the conv layers learn: ``positive-negative`` (goodness of positive data up and of
#: negative data down, the label as input channels, TryAll) or ``channel-competitive``
#: (each class owns a group of channels; see :mod:`fflib_conv.competitive`).
OBJECTIVES = ("positive-negative", "channel-competitive")
#: Where a layer's ``pool`` applies: on its own output (its goodness sees the pooled map)
#: or on the next layer's input (its goodness sees the full map, as CwComp does).
POOL_PLACEMENTS = ("output", "next-input")

#: Per-objective defaults of the options given as ``None``: what each objective trains
#: best with (channel-competitive layers read BatchNorm'd outputs, not RMS-normalised
#: inputs, and have no dense layers).
OBJECTIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "positive-negative": {
        "dense": (100,),
        "norm": "rms",
        "output_norm": "none",
        "weight_init": "default",
        "pool_placement": "output",
    },
    "channel-competitive": {
        "dense": (),
        "norm": "none",
        "output_norm": "batch",
        "weight_init": "kaiming",
        "pool_placement": "next-input",
    },
}


def build_convs(
    in_channels: int,
    size: tuple[int, int],
    widths: Sequence[int],
    kernels: Sequence[int],
    pools: Sequence[int],
    *,
    padding: str,
    pool_placement: str,
    first_norm_over: str,
    norm_over: str,
    **layer_options: Any,
) -> tuple[list[FFConv2d], tuple[int, int]]:
    """The conv layers and the ``(H, W)`` of the last one's output.

    With ``pool_placement="next-input"`` layer ``i``'s pool is the max-pool at the start
    of layer ``i + 1``; the last layer's pool is then unused (no layer reads it).
    """
    convs: list[FFConv2d] = []
    height, width = size
    for index, (out_channels, kernel, window) in enumerate(
        zip(widths, kernels, pools, strict=True)
    ):
        if pool_placement == "output":
            pool, input_pool = window, 1
        else:
            pool, input_pool = 1, pools[index - 1] if index > 0 else 1
        out_size = conv_output_size(size, kernel, padding, pool, input_pool)
        if out_size is None:
            raise InvalidValueError(
                "layers",
                list(widths),
                f"conv layers that keep the {height}x{width} input at least 1x1 "
                f"(layer {index} gets {size[0]}x{size[1]}; use fewer layers, smaller pools "
                "or padding 'same')",
            )
        convs.append(
            ffconv2d(
                in_channels,
                out_channels,
                kernel_size=kernel,
                padding=padding,
                pool=pool,
                input_pool=input_pool,
                norm_over=first_norm_over if index == 0 else norm_over,
                input_size=size,
                **layer_options,
            )
        )
        in_channels, size = out_channels, out_size
    return convs, size


def set_weight_decay(layers: Sequence[FFLayer], weight_decay: float) -> None:
    """Give every layer's optimizer ``weight_decay`` (decoupled for ``adamw``)."""
    for layer in layers:
        for group in layer.optimizer.param_groups:
            group["weight_decay"] = weight_decay


def ffcnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    objective: str = "positive-negative",
    layers: Sequence[int] = (32, 64),
    kernel_size: int | Sequence[int] = 3,
    padding: str = "same",
    pool: int | Sequence[int] = 2,
    pool_placement: str | None = None,
    norm: str | None = None,
    norm_over: str = "channels",
    input_norm_over: str = "sample",
    output_norm: str | None = None,
    weight_init: str | None = None,
    goodness_reduce: str = "mean",
    dense: Sequence[int] | None = None,
    dense_layer: str = "ffdense",
    dense_lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float | None = None,
    layer_range: Sequence[int] | str | None = None,
    augment: str | None = None,
    label_scale: float = 1.0,
    dense_label: bool = True,
    classifier_lr: float = 1e-3,
    schedule: str = "joint",
    ff_epochs: int | None = None,
    **layer_options: Any,
) -> FFCNN | ChannelCompetitiveCNN:
    """FF conv layers: label channels and TryAll, or channel-competitive with class-goodness.

    ``objective``: ``positive-negative`` (default): FF conv layers (then FF dense layers),
    the label as one-hot input channels, TryAll. ``channel-competitive``: conv layers whose channel
    groups compete for the classes (:class:`ChannelCompetitiveCNN`), no dense layers, the
    ``class-goodness`` read-out. Options left ``None`` (``dense``, ``norm``,
    ``output_norm``, ``weight_init``, ``pool_placement``) take the objective's defaults
    (:data:`OBJECTIVE_DEFAULTS`). ``augment`` (``"crop2,flip"``) augments training
    batches only. ``optimizer`` and ``weight_decay`` (``None``: the optimizer's own)
    serve every layer and the classifier; the dense layers learn at ``dense_lr``; every
    other option (``activation``, ``goodness``, ``lr``...) goes to each layer. The
    label, dense and classifier options apply to ``positive-negative`` only.
    """
    objective = choice("objective", objective, OBJECTIVES)
    defaults = OBJECTIVE_DEFAULTS[objective]
    channels, height, width = image_shape(input_shape)
    widths = int_list("layers", layers, expected="a non-empty list of positive channel counts")
    expected = "a list of positive widths (may be empty)"
    dense = int_list(
        "dense", defaults["dense"] if dense is None else dense, allow_empty=True, expected=expected
    )
    kernels = per_layer("kernel_size", kernel_size, len(widths))
    pools = per_layer("pool", pool, len(widths))
    choice("padding", padding, PADDINGS)
    choice("input_norm_over", input_norm_over, NORM_OVER)
    placement = choice(
        "pool_placement",
        defaults["pool_placement"] if pool_placement is None else pool_placement,
        POOL_PLACEMENTS,
    )
    Augmentation.parse(augment)
    if weight_decay is not None:
        number("weight_decay", weight_decay, low=0, expected="a non-negative number or None")
    check_lr(dense_lr, "dense_lr")
    layer_options["optimizer"] = optimizer
    layer_options["norm"] = defaults["norm"] if norm is None else norm
    layer_options["output_norm"] = defaults["output_norm"] if output_norm is None else output_norm
    layer_options["weight_init"] = defaults["weight_init"] if weight_init is None else weight_init
    image_channels = channels if objective == "channel-competitive" else channels + num_classes
    convs, size = build_convs(
        image_channels,
        (height, width),
        widths,
        kernels,
        pools,
        padding=padding,
        pool_placement=placement,
        first_norm_over=input_norm_over,
        norm_over=norm_over,
        goodness_reduce=goodness_reduce,
        **layer_options,
    )
    if objective == "channel-competitive":
        if dense:
            raise InvalidValueError(
                "dense", dense, "[] for objective 'channel-competitive' (conv layers only)"
            )
        if weight_decay is not None:
            set_weight_decay(convs, weight_decay)
        return ChannelCompetitiveCNN(
            convs,
            (channels, height, width),
            num_classes,
            layer_range=layer_range,
            augment=augment,
        )
    features = convs[-1].out_channels * size[0] * size[1]
    features += num_classes if dense_label is True else 0
    dense_layers: list[FFLayer] = []
    dense_options = {
        k: v for k, v in layer_options.items() if k not in ("output_norm", "weight_init")
    }
    for width_out in dense:
        dense_layers.append(
            build_layer(
                dense_layer,
                in_features=features,
                out_features=width_out,
                **{**dense_options, "lr": dense_lr},
            )
        )
        features = width_out
    model = FFCNN(
        convs,
        dense_layers,
        (channels, height, width),
        num_classes,
        layer_range=layer_range,
        label_scale=label_scale,
        dense_label=dense_label,
        classifier_lr=classifier_lr,
        optimizer=optimizer,
        schedule=schedule,
        ff_epochs=ff_epochs,
        augment=augment,
    )
    if weight_decay is not None:
        set_weight_decay([*convs, *dense_layers], weight_decay)
        for group in model.classifier_optimizer.param_groups:
            group["weight_decay"] = weight_decay
    return model
