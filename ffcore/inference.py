"""Using a trained model: ``ffcore.load(path)`` and what it returns.

A :class:`TrainedModel` wraps a checkpoint's model with everything classifying new data
needs: the probe that turns it into predictions, the input shape, the class names and the
training set's preprocessing (see :class:`~ffcore.interfaces.Preprocessing`). It takes
raw inputs (8-bit images, the data set's own integer values, or floats on the ``[0, 1]``
scale), in batches of any size: they are processed in chunks, on the model's device.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ffcore.checkpoint import load_checkpoint, require_components
from ffcore.devices import resolve_device
from ffcore.errors import CheckpointError, FFLibError, InvalidValueError
from ffcore.eval_mode import eval_mode
from ffcore.interfaces import FFModel, Preprocessing, Probe
from ffcore.precision import autocast, check_precision
from ffcore.registry import create_probe

#: Inputs per chunk: the size ``ff eval`` evaluates in, so that predictions made here
#: equal its own (TryAll multiplies it by the label count, and models block it further).
PREDICT_BATCH_SIZE = 1000


class PreprocessingWarning(UserWarning):
    """A checkpoint records no preprocessing: inputs are used as they are given."""


def _dims(shape: Sequence[int]) -> str:
    return ", ".join(str(size) for size in shape)


def as_batch(x: Tensor, input_shape: Sequence[int]) -> Tensor:
    """``x`` as ``(N, *input_shape)``.

    Accepts a batch ``(N, *input_shape)``; for one-channel images ``(C=1, H, W)`` also
    ``(N, H, W)``; for images, channels last ``(N, H, W, C)`` (as numpy and PIL hold
    them); and one input of ``input_shape`` (a batch of one).
    """
    shape = tuple(input_shape)
    if tuple(x.shape[1:]) == shape:
        return x
    image = len(shape) == 3
    if image and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        return x.unsqueeze(1)
    if image and x.dim() == 4 and tuple(x.shape[1:]) == (shape[1], shape[2], shape[0]):
        return x.permute(0, 3, 1, 2)
    if tuple(x.shape) == shape or (image and shape[0] == 1 and tuple(x.shape) == shape[1:]):
        return x.reshape(1, *shape)
    expected = f"(N, {_dims(shape)})"
    if image:
        if shape[0] == 1:
            expected += f", (N, {_dims(shape[1:])})"
        expected += f" or channels last (N, {shape[1]}, {shape[2]}, {shape[0]})"
    raise InvalidValueError("input shape", tuple(x.shape), f"{expected}: the model's inputs")


class InferenceGraph(nn.Module):
    """The inference path as one tensor function: inputs to ``(scores, labels)``.

    Inputs are floats ``(B, *input_shape)`` on the ``[0, 1]`` scale (integers divided by
    the preprocessing's ``raw_max``; model-ready inputs when no preprocessing is known);
    the graph standardises them, scores every label with the probe and takes the argmax.
    What ``ff export`` traces, and a module ``torch.compile`` can take as it is.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        model: FFModel,
        probe: Probe,
        preprocessing: Preprocessing | None,
        input_shape: Sequence[int],
    ) -> None:
        super().__init__()
        self.model = model
        self.probe = probe
        channels = len(preprocessing.mean) if preprocessing is not None else 0
        self.standardises = channels > 0
        mean = torch.tensor(preprocessing.mean if preprocessing else (), dtype=torch.float32)
        std = torch.tensor(preprocessing.std if preprocessing else (), dtype=torch.float32)
        if channels == 1:
            mean, std = mean[0], std[0]
        elif channels > 1:  # one value per channel, broadcast over the rest
            view = (1, channels) + (1,) * (len(input_shape) - 1)
            mean, std = mean.view(view), std.view(view)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(scores (B, num_classes), labels (B,))`` for inputs ``x``."""
        if self.standardises:
            x = (x - self.mean) / self.std
        scores = self.probe.scores(self.model, x)
        return scores, scores.argmax(dim=1)


class TrainedModel(nn.Module):
    """A trained model ready to classify raw data; what :func:`load` returns.

    - :meth:`predict` ``(x)``: class indices ``(N,)``.
    - :meth:`scores` ``(x)``: per-label scores ``(N, num_classes)``: the summed goodness of
      every label for label-scoring models (probe ``tryall``: ffnet, ffrnn, ffcnn), the
      read-out's logits for models with one (probe ``classifier``: ffc, bp); see
      :attr:`score_kind`.
    - :meth:`predict_proba` ``(x)``: ``softmax(scores / temperature)``. For logits that is
      the usual class probability; for goodness it reads each layer's goodness above the
      threshold as a logit of "positive", as Hinton's loss does (temperature 1).
    - ``model(x)`` is :meth:`scores`, as a torch classifier's call returns its logits.

    ``x`` is a tensor or numpy array of raw inputs of the training shape (see
    :func:`as_batch`): integers (8-bit images, the data set's raw values) or floats on the
    ``[0, 1]`` scale; results come back on ``x``'s device. Inputs are processed in chunks
    of :attr:`batch_size` on the model's device (:meth:`to`), so any number fits.
    """

    def __init__(
        self,
        model: FFModel,
        probe: Probe,
        *,
        probe_name: str,
        input_shape: Sequence[int],
        classes: Sequence[str],
        preprocessing: Preprocessing | None,
        meta: Mapping[str, Any],
        source: str = "",
        precision: str = "fp32",
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> None:
        super().__init__()
        probe.check(model)
        self.model = model.eval()
        self.probe = probe
        self.probe_name = probe_name
        self.input_shape = tuple(int(size) for size in input_shape)
        self.classes = tuple(classes)
        self.preprocessing = preprocessing
        self.meta = dict(meta)
        self.source = source
        self.precision = check_precision(precision, "precision")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValueError("batch_size", batch_size, "a positive integer")
        self.batch_size = batch_size

    @property
    def num_classes(self) -> int:
        """How many labels the model tells apart."""
        return len(self.classes)

    @property
    def score_kind(self) -> str:
        """``"goodness"`` or ``"logits"``: what :meth:`scores` returns (``""``: no scores)."""
        return self.probe.score_kind

    @property
    def model_name(self) -> str:
        """The registered name of the model (``ffnet``, ``ffc``...)."""
        return str((self.meta.get("model") or {}).get("name", type(self.model).__name__))

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (and where inputs are processed)."""
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def prepare(self, x: Tensor) -> Tensor:
        """Raw inputs as the model's float inputs ``(N, *input_shape)``, on ``x``'s device."""
        batch = as_batch(x, self.input_shape)
        if self.preprocessing is None:
            if not batch.is_floating_point():
                raise CheckpointError(
                    f"{self.source or 'this model'} records no input preprocessing (saved "
                    "before FFLib recorded it), so raw integer inputs cannot be scaled: pass "
                    "floats standardised as its training data were, or load it with "
                    "preprocessing=... (e.g. ffcore.load_dataset(NAME).preprocessing)"
                )
            return batch.float()
        return self.preprocessing(batch)

    def _check_float_scale(self, x: Tensor) -> None:
        raw_max = self.preprocessing.raw_max if self.preprocessing else None
        if raw_max is None or not x.is_floating_point() or x.numel() == 0:
            return
        top = float(x.max())
        if top > 1.5:
            warnings.warn(
                f"float inputs are read on the [0, 1] scale (raw values / {raw_max:g}), but "
                f"these reach {top:g}: pass the raw integers (e.g. uint8) or divide by "
                f"{raw_max:g}",
                UserWarning,
                stacklevel=3,
            )

    def _chunked(self, x: Any, compute: Callable[[Tensor], Tensor], empty: Tensor) -> Tensor:
        inputs = x if isinstance(x, Tensor) else torch.as_tensor(x)
        self._check_float_scale(inputs)
        batch = as_batch(inputs, self.input_shape)
        device = self.device
        results: list[Tensor] = []
        with torch.no_grad(), eval_mode(self.model), autocast(device, self.precision):
            for start in range(0, batch.shape[0], self.batch_size):
                chunk = self.prepare(batch[start : start + self.batch_size].to(device))
                results.append(compute(chunk).to(inputs.device))
        return torch.cat(results) if results else empty.to(inputs.device)

    def scores(self, x: Any) -> Tensor:
        """Per-label scores ``(N, num_classes)`` in float32: goodness or logits
        (:attr:`score_kind`)."""
        return self._chunked(
            x,
            lambda chunk: self.probe.scores(self.model, chunk).float(),
            torch.empty(0, self.num_classes),
        )

    def predict_proba(self, x: Any, *, temperature: float = 1.0) -> Tensor:
        """``softmax(scores(x) / temperature)``: ``(N, num_classes)``, rows summing to 1."""
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not (0 < temperature < math.inf)
        ):
            raise InvalidValueError("temperature", temperature, "a positive number")
        return torch.softmax(self.scores(x) / temperature, dim=1)

    def predict(self, x: Any) -> Tensor:
        """Predicted class indices ``(N,)`` (int64): the probe's prediction, as ``ff eval``
        makes it."""
        return self._chunked(
            x,
            lambda chunk: self.probe.predict(self.model, chunk),
            torch.empty(0, dtype=torch.long),
        )

    def forward(self, x: Any) -> Tensor:
        """``model(x)`` is :meth:`scores` (as a classifier's call returns its logits)."""
        return self.scores(x)

    def graph(self) -> InferenceGraph:
        """The inference path as one tensor function (what ``ff export`` traces)."""
        return InferenceGraph(self.model, self.probe, self.preprocessing, self.input_shape)

    def extra_repr(self) -> str:
        return (
            f"model={self.model_name!r}, probe={self.probe_name!r}, "
            f"input_shape={self.input_shape}, classes={len(self.classes)}"
        )


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` looks like a safetensors file (an 8-byte header length, then JSON)."""
    try:
        with path.open("rb") as file:
            head = file.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and head[:2] != b"PK"


def saved_preprocessing(meta: Mapping[str, Any], source: str) -> Preprocessing | None:
    """The preprocessing a checkpoint's description records (``None``: it records none)."""
    recorded = meta.get("preprocessing")
    if recorded is None:
        return None
    try:
        return Preprocessing.from_dict(recorded)
    except InvalidValueError as exc:
        raise CheckpointError(
            f"{source}: damaged preprocessing in the description: {exc}"
        ) from None


def class_names(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The description's class names, or the label numbers when it has none that fit."""
    count = int(meta["num_classes"])
    names = meta.get("class_names")
    if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
        return tuple(names)
    return tuple(str(label) for label in range(count))


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    probe: str | None = None,
    preprocessing: Preprocessing | None = None,
    precision: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> TrainedModel:
    """A checkpoint (``ff train``'s ``.pt``) or ``ff export``'s ``.safetensors`` file, as a
    :class:`TrainedModel` on ``device``.

    Opening never runs code from the file. ``probe`` overrides the one it was trained with;
    ``preprocessing`` supplies the input scaling for checkpoints that do not record it
    (saved before FFLib recorded it): without either, such a model takes model-ready float
    inputs only and a :class:`PreprocessingWarning` says so. ``precision`` defaults to the
    one it was trained at.
    """
    source = Path(path)
    target = resolve_device(str(device))
    if source.is_file() and is_safetensors(source):
        from ffcore.export import read_safetensors

        model, meta = read_safetensors(source)
        model.to(target)
    else:
        loaded = load_checkpoint(source, map_location=target)
        model, meta = loaded.model, loaded.meta
    if probe is None:
        require_components(meta, ("probe",), source)
    probe_name = probe or meta.get("probe") or model.default_probe
    probe_obj = create_probe(str(probe_name))
    recorded = saved_preprocessing(meta, str(source))
    if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
        raise InvalidValueError("preprocessing", preprocessing, "a Preprocessing (or None)")
    chosen = preprocessing or recorded
    if chosen is None:
        warnings.warn(
            f"{source} records no input preprocessing (saved before FFLib recorded it): "
            "inputs are used as given, so pass floats standardised as its training data "
            "were, or load it with preprocessing=ffcore.load_dataset(NAME).preprocessing",
            PreprocessingWarning,
            stacklevel=2,
        )
    saved_precision = (meta.get("config") or {}).get("precision", "fp32")
    try:
        return TrainedModel(
            model,
            probe_obj,
            probe_name=str(probe_name),
            input_shape=meta["input_shape"],
            classes=class_names(meta),
            preprocessing=chosen,
            meta=meta,
            source=str(source),
            precision=precision or check_precision(saved_precision, "precision in the checkpoint"),
            batch_size=batch_size,
        )
    except FFLibError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: damaged description: {exc}") from None
