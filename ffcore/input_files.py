"""Reading ``ff predict``'s inputs: image files and tensor files.

Images (PNG, JPEG and whatever else ``torchvision.io.decode_image`` reads) are decoded to
the model's channel count (grey or RGB), resized to its height and width only when asked,
and put on the ``[0, 1]`` scale (8-bit pixels / 255). A ``.npy`` file (read without
pickles) or a ``.pt`` file holding one tensor (read with ``weights_only=True``) is a
batch of raw inputs, or one input, passed on as they are: integers in the data set's raw
range, or floats on the ``[0, 1]`` scale.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ffcore.errors import DataError, InvalidValueError

TENSOR_SUFFIXES = (".npy", ".pt")


@dataclass(frozen=True)
class NamedInputs:
    """Inputs read from one file: their names (one per row) and the tensor."""

    names: list[str]
    x: Tensor
    #: Read from image files (on the ``[0, 1]`` scale), not from a tensor file.
    from_images: bool = False


def image_size(input_shape: Sequence[int]) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` of a model's image inputs; ``None`` if they are not
    images (``(C, H, W)``, or ``(H, W)`` for one channel)."""
    shape = tuple(input_shape)
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return None


def read_image(path: Path, input_shape: Sequence[int], *, resize: bool) -> Tensor:
    """One image file as a float tensor of ``input_shape`` on the ``[0, 1]`` scale."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    size = image_size(input_shape)
    if size is None:
        raise InvalidValueError(
            "input",
            str(path),
            f"a .npy or .pt tensor file: the model takes inputs of shape {tuple(input_shape)}, "
            "not images",
        )
    channels, height, width = size
    mode = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}.get(channels, ImageReadMode.UNCHANGED)
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 announces that TorchCodec will take over image decoding
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(read_file(str(path)), mode=mode)
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {path}: {reason}") from None
    if image.shape[0] != channels:
        raise DataError(f"image {path} has {image.shape[0]} channels; the model takes {channels}")
    if tuple(image.shape[1:]) != (height, width):
        if not resize:
            raise DataError(
                f"image {path} is {image.shape[2]}x{image.shape[1]} pixels; the model takes "
                f"{width}x{height}: pass --resize to scale it"
            )
        from torchvision.transforms.v2.functional import resize as resize_image

        image = resize_image(image, [height, width], antialias=True)
    scale = float(torch.iinfo(image.dtype).max) if not image.is_floating_point() else 1.0
    scaled: Tensor = (image.float() / scale).reshape(tuple(input_shape))
    return scaled


def read_tensor_file(path: Path) -> Tensor:
    """The tensor in a ``.npy`` file (no pickles) or a ``.pt`` file (``weights_only``)."""
    if path.suffix == ".npy":
        import numpy

        try:
            array = numpy.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path} as a .npy array: {exc}") from None
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path} holds {array.dtype} values; expected numbers")
        tensor: Tensor = torch.from_numpy(array)
        return tensor
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals and damaged files come in many kinds
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {path} as a tensor file (weights_only): {reason}") from None
    if not isinstance(loaded, Tensor):
        raise DataError(f"{path} holds a {type(loaded).__name__}; expected one tensor")
    return loaded


def read_inputs(
    paths: Sequence[str | os.PathLike[str]], input_shape: Sequence[int], *, resize: bool = False
) -> list[NamedInputs]:
    """Every file's inputs, in order, in groups of one kind: consecutive images form one
    group (one input each); a tensor file is a group of one input per row (named
    ``file.npy[i]``), or of one input when it holds a single input of ``input_shape``."""
    groups: list[NamedInputs] = []
    images: list[Tensor] = []
    image_names: list[str] = []

    def flush_images() -> None:
        if images:
            groups.append(NamedInputs(list(image_names), torch.stack(images), from_images=True))
            images.clear()
            image_names.clear()

    shape = tuple(input_shape)
    size = image_size(shape)
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise DataError(f"input {path} does not exist or is not a file")
        if path.suffix.lower() not in TENSOR_SUFFIXES:
            images.append(read_image(path, shape, resize=resize))
            image_names.append(str(path))
            continue
        flush_images()
        x = read_tensor_file(path)
        single = tuple(x.shape) == shape or (
            size is not None and size[0] == 1 and tuple(x.shape) == size[1:]
        )
        if single or x.dim() == 0:
            groups.append(NamedInputs([str(path)], x.reshape(1, *x.shape)))
        else:
            groups.append(NamedInputs([f"{path}[{i}]" for i in range(x.shape[0])], x))
    flush_images()
    return groups
