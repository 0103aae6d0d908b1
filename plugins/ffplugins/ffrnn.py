"""FFRNN: Hinton's recurrent Forward-Forward network, image at the bottom, label at the top."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch, FFModel, NegativeSampler, inputs_of
from ffcore.layers import (
    build_layer,
    flatten_inputs,
    images_per_block,
    int_list,
    integer,
    positive_int,
)
from ffplugins.recurrent import FFRecurrentLayer

#: Rows (images times labels) per block when TryAll scores labels on the CPU.
CPU_LABEL_ROWS = 2048


def parse_test_frames(value: Sequence[int] | str, frames: int) -> tuple[int, int]:
    """``(low, high)``: the 1-based, inclusive frames whose goodness predicts.

    Accepts ``"low:high"`` or a pair ``[low, high]`` with ``1 <= low <= high <= frames``.
    """
    expected = (
        f"'low:high' or [low, high] with 1 <= low <= high <= frames ({frames}), "
        "1-based and inclusive"
    )
    try:
        if isinstance(value, str):
            low_text, sep, high_text = value.partition(":")
            if not sep:
                raise ValueError(value)
            low, high = int(low_text), int(high_text)
        else:
            items = list(value)
            if len(items) != 2:
                raise ValueError(value)
            low, high = (integer("test_frames", item) for item in items)
    except (TypeError, ValueError, InvalidValueError):
        raise InvalidValueError("test_frames", value, expected) from None
    if not 1 <= low <= high <= frames:
        raise InvalidValueError("test_frames", value, expected)
    return low, high


class FFRNN(FFModel):
    """A stack of recurrent FF layers between the image (bottom) and the label (top).

    The flattened input sits below the first layer and the label's one-hot code above the
    last. Every layer keeps a state. States start deterministically: at zero, followed by
    one bottom-up pass (each layer sees the fresh state below it, zero above it, or the
    label for the top layer). Then the network runs synchronous *frames*: in each frame
    every layer computes its new state from the previous frame's states of the layers below
    and above and its own (:meth:`FFRecurrentLayer.step`).

    Training runs ``frames`` frames on positive and negative data together, each layer
    taking one local step per frame. Prediction runs frames ``1 .. high`` of
    ``test_frames = (low, high)`` (1-based, inclusive; frame 1 is the first after the
    bottom-up pass) and averages each layer's signed goodness over frames ``low .. high``,
    summed over layers.
    """

    default_probe = "tryall"

    def __init__(
        self,
        layers: Sequence[FFRecurrentLayer],
        input_features: int,
        num_classes: int,
        *,
        frames: int = 10,
        test_frames: Sequence[int] | str = "3:8",
    ) -> None:
        super().__init__()
        if not layers:
            raise InvalidValueError("layers", list(layers), "at least one layer")
        for index, layer in enumerate(layers):
            if not isinstance(layer, FFRecurrentLayer):
                raise InvalidValueError(
                    "layer", type(layer).__name__, "a recurrent layer (an FFRecurrentLayer)"
                )
            below = input_features if index == 0 else layers[index - 1].rc_features
            above = num_classes if index == len(layers) - 1 else layers[index + 1].rc_features
            if (layer.fw_features, layer.bw_features) != (below, above):
                raise InvalidValueError(
                    "layers",
                    f"layer {index} with fw_features={layer.fw_features}, "
                    f"bw_features={layer.bw_features}",
                    f"fw_features={below} and bw_features={above} to fit its neighbours",
                )
        self.layers = nn.ModuleList(layers)
        self.input_features = input_features
        self.num_classes = num_classes
        self.frames = positive_int("frames", frames)
        self.test_frames = parse_test_frames(test_frames, self.frames)

    def _layer(self, index: int) -> FFRecurrentLayer:
        layer = self.layers[index]
        assert isinstance(layer, FFRecurrentLayer)
        return layer

    def _recurrent_layers(self) -> list[FFRecurrentLayer]:
        return [self._layer(index) for index in range(len(self.layers))]

    def flatten(self, x: Tensor) -> Tensor:
        """The input as ``(B, input_features)``."""
        return flatten_inputs(x, self.input_features, "FFRNN")

    def label_code(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """The labels' one-hot codes, ``(B, num_classes)``: the top layer's input."""
        return F.one_hot(y, self.num_classes).to(dtype)

    def initial_states(
        self, bottom: Tensor | None, top: Tensor, bottom_drive: Tensor | None = None
    ) -> list[Tensor]:
        """The states before frame 1: zero, then one bottom-up pass (deterministic).

        ``bottom_drive`` is the first layer's precomputed drive from ``bottom``.
        """
        layers = self._recurrent_layers()
        states: list[Tensor] = []
        with torch.no_grad():
            for index, layer in enumerate(layers):
                below = bottom if index == 0 else states[index - 1]
                above = top if index == len(layers) - 1 else None
                drive = bottom_drive if index == 0 else None
                states.append(layer.step(below, None, above, drive=drive))
        return states

    def frame(
        self,
        bottom: Tensor | None,
        top: Tensor,
        states: Sequence[Tensor],
        bottom_drive: Tensor | None = None,
    ) -> list[Tensor]:
        """One synchronous frame: every layer's new state from the previous ``states``."""
        layers = self._recurrent_layers()
        last = len(layers) - 1
        return [
            layer.step(
                bottom if index == 0 else states[index - 1],
                states[index],
                top if index == last else states[index + 1],
                drive=bottom_drive if index == 0 else None,
            )
            for index, layer in enumerate(layers)
        ]

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        negative = negatives(batch, self)
        num_pos = batch.x.shape[0]
        bottom = torch.cat((self.flatten(batch.x), self.flatten(negative.x)))
        top = self.label_code(torch.cat((batch.y, negative.y)), bottom.dtype)
        layers = self._recurrent_layers()
        last = len(layers) - 1
        states = self.initial_states(bottom, top)
        total = torch.zeros((), device=bottom.device)
        for _ in range(self.frames):
            new_states: list[Tensor] = []
            for index, layer in enumerate(layers):
                result = layer.train_frame(
                    bottom if index == 0 else states[index - 1],
                    states[index],
                    top if index == last else states[index + 1],
                    num_pos,
                )
                total = total + result.loss
                new_states.append(result.h)
            states = new_states
        return total

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Every layer's state at the last test frame, for inputs ``x`` with labels ``y``."""
        bottom = self.flatten(x)
        top = self.label_code(y, bottom.dtype)
        drive = self._layer(0).bottom_up(bottom)  # the same image every frame
        states = self.initial_states(None, top, drive)
        for _ in range(self.test_frames[1]):
            states = self.frame(None, top, states, drive)
        return states

    @torch.no_grad()
    def goodness(self, x: Tensor, y: Tensor) -> Tensor:
        """``(B,)``: signed goodness averaged over the test frames, summed over layers."""
        flat = self.flatten(x)
        return self._goodness(flat, self.label_code(y, flat.dtype), copies=1)

    @torch.no_grad()
    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        """``(B, num_classes)``: the goodness of ``x`` with every label.

        Batched over labels: all ``B * num_classes`` rows at once on accelerators; on the
        CPU in blocks of about :data:`CPU_LABEL_ROWS` rows, which keep the frames' states
        nearer the cache.
        """
        flat = self.flatten(inputs_of(x))
        per_block = images_per_block(flat, self.num_classes, CPU_LABEL_ROWS)
        if flat.shape[0] <= per_block:
            return self._goodness_per_label(flat)
        return torch.cat([self._goodness_per_label(part) for part in torch.split(flat, per_block)])

    def _goodness_per_label(self, flat: Tensor) -> Tensor:
        batch = flat.shape[0]
        labels = torch.arange(self.num_classes, device=flat.device).repeat(batch)
        scores = self._goodness(flat, self.label_code(labels, flat.dtype), self.num_classes)
        return scores.view(batch, self.num_classes)

    def _goodness(self, flat: Tensor, top: Tensor, copies: int) -> Tensor:
        """Signed goodness ``(B * copies,)`` of images ``flat`` (``B`` rows), each with
        ``copies`` label codes: row ``r`` of ``top`` goes with image ``r // copies``.

        What is the same for every label is computed once per image: the image's drive
        into the first layer (every frame), and every state the label has not reached
        yet. The label enters at the top and moves down one layer per frame, so in the
        bottom-up pass every layer but the top one is label-free, and so is the drive
        those states give the layer above in the next frame.
        """
        low, high = self.test_frames
        layers = self._recurrent_layers()
        last = len(layers) - 1
        labelled = _Spreader(copies)
        image = _State(layers[0].bottom_up(flat), shared=True)  # the first layer's drive
        code = _State(top, shared=copies == 1)

        def advance(index: int, previous: _State | None, above: _State | None) -> _State:
            layer = layers[index]
            below = image if index == 0 else states[index - 1]
            drive = below.value if index == 0 else layer.bottom_up(below.value)
            if below.shared and all(s is None or s.shared for s in (previous, above)):
                new = layer.step(None, _value(previous), _value(above), drive=drive)
                return _State(new, shared=True)
            if below.shared:
                drive = labelled.image_drive(drive) if index == 0 else labelled(drive)
            new = layer.step(None, labelled.state(previous), labelled.state(above), drive=drive)
            return _State(new, shared=False)

        states: list[_State] = []
        for index in range(len(layers)):  # the bottom-up pass: no previous state
            states.append(advance(index, None, code if index == last else None))
        total = torch.zeros(top.shape[0], dtype=top.dtype, device=top.device)
        for frame in range(1, high + 1):
            states = [
                advance(index, states[index], code if index == last else states[index + 1])
                for index in range(len(layers))
            ]
            if frame >= low:
                for layer, state in zip(layers, states, strict=True):
                    score = layer.score(state.value)
                    total = total + (labelled(score) if state.shared else score)
        return total / (high - low + 1)

    def extra_summary(self) -> dict[str, Any]:
        betas = sorted({layer.beta for layer in self._recurrent_layers()})
        return {
            "frames": self.frames,
            "test_frames": list(self.test_frames),
            "beta": betas[0] if len(betas) == 1 else betas,
        }


def ffrnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    layers: Sequence[int] = (2000, 2000),
    layer: str = "ffrecurrent",
    frames: int = 10,
    test_frames: Sequence[int] | str = "3:8",
    **layer_options: Any,
) -> FFRNN:
    """Recurrent FF net: image below, label above, goodness averaged over test frames.

    Every other option (``beta``, ``goodness``, ``lr``...) goes to each layer.
    """
    widths = int_list("layers", layers)
    parse_test_frames(test_frames, positive_int("frames", frames))
    below = [math.prod(input_shape), *widths[:-1]]
    above = [*widths[1:], num_classes]
    rnn_layers: list[FFRecurrentLayer] = []
    for fw_features, rc_features, bw_features in zip(below, widths, above, strict=True):
        built = build_layer(
            layer,
            fw_features=fw_features,
            rc_features=rc_features,
            bw_features=bw_features,
            **layer_options,
        )
        if not isinstance(built, FFRecurrentLayer):
            raise InvalidValueError("layer", layer, "a recurrent layer, e.g. 'ffrecurrent'")
        rnn_layers.append(built)
    return FFRNN(rnn_layers, below[0], num_classes, frames=frames, test_frames=test_frames)


class _State(NamedTuple):
    """A layer's state and whether it is still the same for every label (then it has
    one row per image, not one per image and label)."""

    value: Tensor
    shared: bool


def _value(state: _State | None) -> Tensor | None:
    return None if state is None else state.value


class _Spreader:
    """Repeats per-image rows for every label (``repeat_interleave``); the image's drive,
    which every frame reuses, only once."""

    def __init__(self, copies: int) -> None:
        self.copies = copies
        self._image: Tensor | None = None

    def __call__(self, rows: Tensor) -> Tensor:
        return rows if self.copies == 1 else rows.repeat_interleave(self.copies, dim=0)

    def state(self, state: _State | None) -> Tensor | None:
        """The state's rows for every label (``None`` stays ``None``)."""
        if state is None:
            return None
        return self(state.value) if state.shared else state.value

    def image_drive(self, drive: Tensor) -> Tensor:
        """The image's drive (the same tensor on every call) for every label."""
        if self._image is None:
            self._image = self(drive)
        return self._image
