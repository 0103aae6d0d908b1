"""Whole-tensor data handling: splitting, sub-sampling and index batching."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ffcore.errors import DataError
from ffcore.interfaces import DataSplits, Preprocessing, Split
from ffcore.interfaces.preprocessing import finite_statistics
from ffcore.validate import number, positive_int


def check_fraction(field: str, value: float, *, allow_zero: bool, allow_one: bool) -> float:
    """``value`` as a float if it lies in the allowed part of ``[0, 1]``."""
    return number(field, value, low=0.0, high=1.0, low_open=not allow_zero, high_open=not allow_one)


def _take(
    x: Tensor, y: Tensor, fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    if fraction >= 1.0:
        return x, y
    count = max(1, round(len(y) * fraction))
    index = torch.randperm(len(y), generator=generator)[:count]
    return x[index], y[index]


def make_splits(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    val_split: float = 0.1,
    use: float = 1.0,
    seed: int = 0,
    class_names: Sequence[str] = (),
    preprocessing: Preprocessing | None = None,
) -> DataSplits:
    """Build :class:`DataSplits` from full train and test tensors.

    ``use`` keeps that fraction of each split (drawn with ``seed``); ``val_split`` then
    moves that fraction of the training data to a validation split. ``preprocessing``
    is how ``train`` and ``test`` were made from raw data (see :class:`Preprocessing`).
    """
    val_split = check_fraction("val_split", val_split, allow_zero=True, allow_one=False)
    use = check_fraction("use", use, allow_zero=False, allow_one=True)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = _take(*train, use, generator)
    test_x, test_y = _take(*test, use, generator)
    val: Split | None = None
    if val_split > 0:
        count = math.floor(len(train_y) * val_split)
        if count == 0 or count >= len(train_y):
            raise DataError(
                f"dataset {name!r}: val_split={val_split} of {len(train_y)} training samples "
                "leaves no validation or no training data; use more data or val_split=0"
            )
        order = torch.randperm(len(train_y), generator=generator)
        val = Split(train_x[order[:count]], train_y[order[:count]])
        train_x, train_y = train_x[order[count:]], train_y[order[count:]]
    return DataSplits(
        name=name,
        train=Split(train_x, train_y),
        val=val,
        test=Split(test_x, test_y),
        input_shape=tuple(train_x.shape[1:]),
        num_classes=num_classes,
        class_names=tuple(class_names),
        preprocessing=preprocessing,
    )


def standardize(train_x: Tensor, *others: Tensor) -> list[Tensor]:
    """Scale every tensor by the training set's scalar mean and standard deviation.

    The statistics are those of the finite values: one NaN pixel stays one NaN value
    (which :class:`~ffcore.interfaces.DataSplits` then reports, counted right) instead of
    turning every value of every split into NaN.
    """
    statistics = finite_statistics(train_x)
    if statistics is None:
        return [t.clone() for t in (train_x, *others)]
    mean, std = statistics
    return [(t - mean) / std for t in (train_x, *others)]


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    start: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``split`` by index (no per-sample work), on the split's device.

    ``start`` skips that many batches of the (same) order: how a resumed run picks up
    in the middle of an epoch.
    """
    positive_int("batch_size", batch_size)
    count = len(split)
    if shuffle:
        order = torch.randperm(count, generator=generator).to(split.x.device)
    else:
        order = torch.arange(count, device=split.x.device)
    stop = count - count % batch_size if drop_last else count
    for first in range(start * batch_size, stop, batch_size):
        index = order[first : first + batch_size]
        yield split.x[index], split.y[index]


#: torch seeds are unsigned 64-bit numbers.
_SEED_MODULUS = 1 << 64


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s data order: ``seed * 1_000_003 + epoch``, modulo 2^64.

    Every seed up to 2^63 - 1 works (the product used to overflow torch's 64-bit seed
    above about 1.8e13); below that the value is the same as it always was, so recorded
    runs keep their data order. As 1,000,003 is odd, distinct seeds still give distinct
    epoch-0 orders.
    """
    return (seed * 1_000_003 + epoch) % _SEED_MODULUS


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that orders epoch ``epoch``'s data: a function of seed and epoch only,
    so a resumed run sees exactly the order the uninterrupted run saw."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


def num_batches(count: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches :func:`iterate_batches` yields."""
    return count // batch_size if drop_last else -(-count // batch_size)
