"""Channel-wise competitive Forward-Forward (CwComp, Papachristodoulou et al., AAAI 2024).

Each conv layer's ``C`` output channels are split into ``K = num_classes`` groups of
``C / K``. The layer's goodness for class ``k`` is the mean square of group ``k``'s
activations over its channels and positions; the layer learns by cross-entropy of these
``K`` goodness values against the label. Classes compete for the layer's channels, so
there is no negative data and no label in the input: one forward pass per image trains
and predicts. The prediction is the class with the highest goodness summed over a range
of layers (:attr:`ChannelCompetitiveCNN.layer_range`), read by the ``class-goodness`` probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from ffcore.errors import InvalidValueError
from ffcore.interfaces import (
    Batch,
    FFModel,
    LayerStepResult,
    NegativeSampler,
    Probe,
    ScoringProbe,
    inputs_of,
    require,
)
from ffcore.layers import parse_layer_range
from torch import Tensor, nn

from fflib_conv.augment import Augmentation
from fflib_conv.layer import FFConv2d


def class_goodness(h: Tensor, num_classes: int) -> Tensor:
    """``(B, num_classes)``: mean square of each class's channel group of ``h``.

    ``h`` is ``(B, C, H, W)`` with ``C`` a multiple of ``num_classes``; group ``k`` is the
    channels ``k·C/K .. (k+1)·C/K - 1``. Computed in float32 (bfloat16 activations under
    mixed precision would round the classes' small differences away).
    """
    channels = h.shape[1]
    if channels % num_classes:
        raise InvalidValueError(
            "out_channels", channels, f"a multiple of the {num_classes} classes"
        )
    squares = h.float().square()
    return squares.reshape(h.shape[0], num_classes, -1).mean(dim=2)


def competitive_loss(goodness: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of the classes' goodness (as logits) against the labels ``y``."""
    return F.cross_entropy(goodness, y)


def competitive_step(layer: FFConv2d, x: Tensor, y: Tensor, num_classes: int) -> LayerStepResult:
    """One local update of ``layer`` on inputs ``x`` with labels ``y``.

    The input is detached by the layer, so no gradient reaches the layers below. Returns
    the detached output (computed before the update), which the next layer reads, with
    the goodness of each sample's own class (``g``) and the loss; every row counts as
    positive. The layer's ``check_finite`` and observer apply as in its usual step.
    """
    h = layer(x)
    goodness = class_goodness(h, num_classes)
    loss = competitive_loss(goodness, y)
    own = goodness.detach().gather(1, y.view(-1, 1)).squeeze(1)
    return layer.step_on(loss, h, own, h.shape[0])


@runtime_checkable
class ClassGoodnessModel(Protocol):
    """A model whose layers score every class in one pass (what ``class-goodness`` reads)."""

    num_classes: int

    def class_scores(self, x: Tensor | Batch) -> Tensor:
        """``(B, num_classes)``: each class's goodness summed over the read-out layers."""
        ...


class ChannelCompetitiveCNN(FFModel):
    """Conv layers trained by channel-wise competition; goodness per class as the read-out.

    Each image is layer-normalised (zero mean, unit variance over all its pixels) so that
    goodness is comparable between images of different contrast. In training mode with an
    ``augment`` spec, each batch is augmented first (see :class:`Augmentation`).

    Args:
        layers: the FF conv layers; each one's channels are a multiple of ``num_classes``.
        input_shape: ``(C, H, W)`` of the images.
        num_classes: the number of classes (channel groups per layer).
        layer_range: the layers whose goodness is summed for the prediction (``"2:"``,
            ``[start, stop]``; ``None``: all).
        augment: the augmentation of training batches (``"crop2,flip"``; ``""``: none).
    """

    default_probe = "class-goodness"

    def __init__(
        self,
        layers: Sequence[FFConv2d],
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        layer_range: Sequence[int] | str | None = None,
        augment: str | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        widths = [layer.out_channels for layer in layers]
        if not widths or any(width % num_classes for width in widths):
            raise InvalidValueError(
                "layers",
                widths,
                f"one or more channel counts, each a multiple of the {num_classes} classes "
                "(one channel group per class)",
            )
        self.layers = nn.ModuleList(layers)
        self.layer_range = parse_layer_range(layer_range, len(self.layers))
        self.augmentation = Augmentation.parse(augment)

    def image(self, x: Tensor) -> Tensor:
        """``x`` as ``(B, C, H, W)`` (``(B, H, W)`` for one channel is accepted)."""
        if tuple(x.shape[1:]) == self.input_shape:
            return x
        if x.dim() == 3 and self.input_shape[0] == 1 and tuple(x.shape[1:]) == self.input_shape[1:]:
            return x.unsqueeze(1)
        raise InvalidValueError(
            "input shape",
            tuple(x.shape),
            f"(batch, {', '.join(map(str, self.input_shape))}) for this model",
        )

    def prepare(self, x: Tensor) -> Tensor:
        """The images, layer-normalised per image: what the first layer reads."""
        image = self.image(x)
        return F.layer_norm(image, image.shape[1:])

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        """One competitive step of every layer, bottom up; the summed layer losses.

        ``negatives`` is not used: the classes' channel groups compete instead.
        """
        image = self.image(batch.x)
        if self.training and self.augmentation:
            image = self.augmentation(image)
        h = self.prepare(image)
        total = torch.zeros((), device=h.device)
        for layer in self.layers:
            assert isinstance(layer, FFConv2d)
            result = competitive_step(layer, h, batch.y, self.num_classes)
            total = total + result.loss
            h = result.h
        return total

    def layer_goodness(self, x: Tensor | Batch, stop: int | None = None) -> list[Tensor]:
        """The ``(B, num_classes)`` class goodness of every layer (of the first ``stop``)."""
        h = self.prepare(inputs_of(x))
        scores: list[Tensor] = []
        for layer in self.layers[:stop]:
            h = layer(h)
            scores.append(class_goodness(h, self.num_classes))
        return scores

    def class_scores(self, x: Tensor | Batch) -> Tensor:
        """``(B, num_classes)``: class goodness summed over :attr:`layer_range`."""
        start, stop = self.layer_range
        scores = self.layer_goodness(x, stop)[start:]
        return sum(scores[1:], scores[0])  # layer by layer, bottom first

    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """The same as :meth:`class_scores`: each label's goodness (higher is better), so
        that probes and samplers that compare labels (TryAll, ``hard``) work unchanged."""
        return self.class_scores(x)

    def extra_summary(self) -> dict[str, Any]:
        return {
            "objective": "channel-competitive",
            "layer_range": list(self.layer_range),
            "conv_layers": len(self.layers),
            "augment": self.augmentation.spec,
        }


class ClassGoodness(ScoringProbe):
    """Predicts the class whose channel group has the highest goodness, summed over the
    model's read-out layers: one forward pass per image, no label tried in the input."""

    score_kind = "goodness"
    NEEDS = (
        "probe 'class-goodness' needs a model with per-class goodness (class_scores), "
        "e.g. ffcnn with objective 'channel-competitive'; {model} has none: choose "
        "another --probe"
    )

    def check(self, model: nn.Module) -> None:
        require(model, ClassGoodnessModel, self.NEEDS)

    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        return require(model, ClassGoodnessModel, self.NEEDS).class_scores(x)


@runtime_checkable
class ImageClassGoodnessModel(ClassGoodnessModel, Protocol):
    """A :class:`ClassGoodnessModel` that shows its inputs as images (for mirroring)."""

    def image(self, x: Tensor) -> Tensor:
        """``x`` as ``(B, C, H, W)``."""
        ...


class MirroredClassGoodness(ClassGoodness):
    """:class:`ClassGoodness` of each image and its mirror image, added: two passes.

    For data whose classes do not change when mirrored left to right (clothes, most
    photographs; not digits or letters), the model trained on mirrored images
    (``augment = "flip"``) scores both views of an image, and their evidence adds up.
    """

    NEEDS = (
        "probe 'class-goodness-mirrored' needs a model with per-class goodness of images "
        "(class_scores, image), e.g. ffcnn with objective 'channel-competitive'; {model} "
        "has none: choose another --probe"
    )

    def check(self, model: nn.Module) -> None:
        require(model, ImageClassGoodnessModel, self.NEEDS)

    def scores(self, model: nn.Module, x: Tensor) -> Tensor:
        scorer = require(model, ImageClassGoodnessModel, self.NEEDS)
        images = scorer.image(x)
        return scorer.class_scores(images) + scorer.class_scores(images.flip(-1))


def class_goodness_probe() -> Probe:
    """Predict the class whose channel group has the most goodness, in one pass.

    The goodness is summed over the model's read-out layers (``layer_range``).
    """
    return ClassGoodness()


def mirrored_class_goodness_probe() -> Probe:
    """class-goodness of each image and its mirror image, added (two passes).

    For data whose classes survive a left-right mirror (Fashion-MNIST, CIFAR-10).
    """
    return MirroredClassGoodness()
