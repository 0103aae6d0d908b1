"""Data sets as whole tensors: train / validation / test splits plus their shape."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ffcore.errors import DataError, InvalidValueError
from ffcore.interfaces.preprocessing import Preprocessing


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32, ``(N, *input_shape)``) and integer labels ``y`` (``(N,)``)."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(
                f"split has {self.x.shape[0]} inputs but {self.y.shape[0]} labels; "
                "expected one label per input"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """The same split on ``device``."""
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class DataSplits:
    """What a dataset factory returns.

    ``preprocessing`` says how the raw data became these inputs (see
    :class:`Preprocessing`); checkpoints store it so that a trained model can classify raw
    data. ``None``: the data set does not say (raw-input prediction then needs it given).
    """

    name: str
    train: Split
    val: Split | None
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        if self.preprocessing is not None and not isinstance(self.preprocessing, Preprocessing):
            raise InvalidValueError(
                "preprocessing", self.preprocessing, "a Preprocessing (or None)"
            )
        if self.num_classes < 2:
            raise InvalidValueError("num_classes", self.num_classes, "at least 2")
        if math.prod(self.input_shape) == 0:
            raise DataError(
                f"dataset {self.name!r}: inputs of shape {tuple(self.input_shape)} hold no "
                "values; expected at least one feature per sample"
            )
        for split_name, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            if split is None:
                continue
            if len(split) == 0 and split_name != "val":
                raise DataError(f"dataset {self.name!r}: the {split_name} split is empty")
            if tuple(split.x.shape[1:]) != self.input_shape:
                raise DataError(
                    f"dataset {self.name!r}: {split_name} inputs have shape "
                    f"{tuple(split.x.shape[1:])}, expected {self.input_shape}"
                )
            if not len(split):
                continue
            if split.x.is_floating_point() and not bool(torch.isfinite(split.x).all()):
                bad = int((~torch.isfinite(split.x)).sum())
                raise DataError(
                    f"dataset {self.name!r}: {split_name} inputs hold {bad} NaN or infinite "
                    "values; clean or impute them first"
                )
            low, high = int(split.y.min()), int(split.y.max())
            if low < 0 or high >= self.num_classes:
                raise DataError(
                    f"dataset {self.name!r}: {split_name} labels span {low}..{high}, "
                    f"expected 0..{self.num_classes - 1}"
                )
