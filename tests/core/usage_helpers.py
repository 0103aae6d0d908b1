"""Helpers for the tests of using trained models: tiny trained checkpoints, the raw
``digits`` test split, and an MNIST-layout data set of 8-bit images made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ffcore.config import TrainConfig
from ffcore.runs import save_run
from ffcore.training import build_run, train
from ffplugins.datasets.embedded import DATA_DIR, DIGITS_TEST_SIZE
from ffplugins.datasets.idx import read_idx, write_idx

TINY: dict[str, Any] = {
    "preset": "plain",
    "layers": [24, 16],
    "epochs": 1,
    "batch_size": 64,
    "device": "cpu",
}


def train_tiny(path: Path, **settings: Any) -> Path:
    """Train a tiny model (``settings`` over :data:`TINY`) for one epoch; save it."""
    run = build_run(TrainConfig(**{**TINY, **settings}))
    metrics = train(run)
    return save_run(run, path, metrics)


def digits_raw() -> tuple[Tensor, Tensor, Tensor]:
    """``digits``' raw images (uint8, 0..16, ``(N, 8, 8)``), labels, and the order whose
    first :data:`DIGITS_TEST_SIZE` entries are its test split, as the data set draws it."""
    images = read_idx(DATA_DIR / "digits-images-idx3-ubyte.gz")
    labels = read_idx(DATA_DIR / "digits-labels-idx1-ubyte.gz").long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
    return images, labels, order


def digits_raw_test() -> tuple[Tensor, Tensor]:
    """The raw ``digits`` test split (uint8 0..16, ``(360, 8, 8)``) and its labels."""
    images, labels, order = digits_raw()
    test = order[:DIGITS_TEST_SIZE]
    return images[test], labels[test]


def write_mnist_layout(root: Path) -> tuple[Tensor, Tensor]:
    """``digits`` as 8-bit 8x8 images (0..255) in torchvision's MNIST layout under
    ``root`` (so ``--dataset mnist --data-root root`` reads them); returns the test
    split's images ``(360, 8, 8)`` and labels, in the order the data set keeps them."""
    images, labels, order = digits_raw()
    pixels = (images.int() * 255 // 16).to(torch.uint8)
    test, train_index = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", pixels[train_index].contiguous())
    write_idx(raw / "train-labels-idx1-ubyte", labels[train_index].to(torch.uint8).contiguous())
    write_idx(raw / "t10k-images-idx3-ubyte", pixels[test].contiguous())
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[test].to(torch.uint8).contiguous())
    return pixels[test], labels[test]
