"""How a data set turned its raw inputs into what the model trained on.

A data set reports it in :attr:`DataSplits.preprocessing`, and the checkpoint stores it,
so a trained model classifies raw data (8-bit images, the data set's own integer values)
without reloading the training set: integers are divided by ``raw_max`` (255 for 8-bit
images), which puts them on the ``[0, 1]`` scale, then standardised with the training
set's ``mean`` and ``std``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ffcore.errors import InvalidValueError


def _floats(field: str, values: object, *, positive: bool) -> tuple[float, ...]:
    expected = "a list of positive numbers" if positive else "a list of finite numbers"
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidValueError(field, values, expected)
    result: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValueError(field, values, expected)
        number = float(value)
        if not math.isfinite(number) or (positive and number <= 0):
            raise InvalidValueError(field, values, expected)
        result.append(number)
    return tuple(result)


@dataclass(frozen=True)
class Preprocessing:
    """The scaling from raw inputs to model inputs: ``(x / raw_max - mean) / std``.

    ``raw_max``: what integer inputs are divided by to reach the ``[0, 1]`` scale (255 for
    8-bit images, 16 for ``digits``' 4-bit values); ``None`` when the data set's inputs are
    not integers (then integer inputs are only cast to float). ``mean`` and ``std``:
    the training set's statistics on that scale, one value for all features or one per
    channel (dimension 1 of ``(N, C, ...)`` inputs); empty when the data set does not
    standardise. ``Preprocessing()`` is the identity.
    """

    raw_max: float | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.raw_max is not None:
            (raw_max,) = _floats("preprocessing raw_max", [self.raw_max], positive=True)
            object.__setattr__(self, "raw_max", raw_max)
        object.__setattr__(self, "mean", _floats("preprocessing mean", self.mean, positive=False))
        object.__setattr__(self, "std", _floats("preprocessing std", self.std, positive=True))
        if len(self.mean) != len(self.std):
            raise InvalidValueError(
                "preprocessing std",
                list(self.std),
                f"as many values as mean has ({len(self.mean)})",
            )

    @property
    def standardises(self) -> bool:
        """Whether inputs are standardised (``mean`` and ``std`` are given)."""
        return bool(self.mean)

    def to_float(self, x: Tensor) -> Tensor:
        """``x`` as float32 on the ``[0, 1]`` scale: integers divided by ``raw_max``."""
        if x.dtype == torch.bool or x.is_complex():
            raise InvalidValueError("input dtype", str(x.dtype), "integer or floating point")
        if x.is_floating_point():
            return x.float()
        if self.raw_max is None:
            return x.float()
        return x.float() / self.raw_max

    def standardise(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` on float inputs of the ``[0, 1]`` scale ``(N, ...)``.

        The same float32 operations as :func:`ffcore.data.standardize`, so inputs prepared
        here equal the data set's own bit for bit.
        """
        if not self.standardises:
            return x
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)
        if len(self.mean) == 1:
            return (x - mean[0]) / std[0]
        if x.dim() < 2 or x.shape[1] != len(self.mean):
            raise InvalidValueError(
                "input shape",
                tuple(x.shape),
                f"(N, {len(self.mean)}, ...): one channel per mean of the preprocessing",
            )
        shape = (1, len(self.mean)) + (1,) * (x.dim() - 2)
        return (x - mean.view(shape)) / std.view(shape)

    def __call__(self, x: Tensor) -> Tensor:
        """Raw inputs (integers, or floats on the ``[0, 1]`` scale) as the model's inputs."""
        return self.standardise(self.to_float(x))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what a checkpoint's description stores under ``preprocessing``."""
        return {"raw_max": self.raw_max, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """The inverse of :meth:`to_dict`; bad values raise :class:`InvalidValueError`."""
        if not isinstance(values, Mapping):
            raise InvalidValueError("preprocessing", values, "a table of raw_max, mean and std")
        unknown = set(values) - {"raw_max", "mean", "std"}
        if unknown:
            raise InvalidValueError(
                "preprocessing", sorted(unknown), "only the keys raw_max, mean and std"
            )
        return cls(
            raw_max=values.get("raw_max"),
            mean=tuple(values.get("mean") or ()),
            std=tuple(values.get("std") or ()),
        )


def finite_statistics(train_x: Tensor) -> tuple[Tensor, Tensor] | None:
    """The scalar mean and standard deviation (at least 1e-8) of ``train_x``'s finite
    values; ``None`` when it has none.

    Only the finite values count, so that one NaN pixel stays one NaN value (which
    :class:`~ffcore.interfaces.DataSplits` reports, counted right) instead of turning
    every value of every split into NaN. Data without NaN or infinities gets exactly the
    statistics of all its values.
    """
    values = train_x
    if train_x.is_floating_point() and not bool(torch.isfinite(train_x).all()):
        values = train_x[torch.isfinite(train_x)]
    if values.numel() == 0:
        return None
    std = values.std() if values.numel() > 1 else torch.zeros((), dtype=values.dtype)
    return values.mean(), std.clamp_min(1e-8)


def standardization(train_x: Tensor, *, raw_max: float | None) -> Preprocessing:
    """The preprocessing :func:`ffcore.data.standardize` applies with ``train_x``'s scalar
    mean and standard deviation (``train_x`` already divided by ``raw_max``); no
    standardisation when ``train_x`` holds no finite value (the data set refuses it)."""
    statistics = finite_statistics(train_x)
    if statistics is None:
        return Preprocessing(raw_max=raw_max)
    mean, std = statistics
    return Preprocessing(raw_max=raw_max, mean=(float(mean),), std=(float(std),))
