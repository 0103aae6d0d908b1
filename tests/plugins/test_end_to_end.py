"""A tiny end-to-end run: FFNet on digits learns well above chance in seconds."""

from __future__ import annotations

import torch

import ffcore
from ffcore.data import iterate_batches
from ffcore.interfaces import Batch
from ffplugins.ffnet import FFNet


def test_ffnet_learns_digits() -> None:
    torch.manual_seed(0)
    splits = ffcore.load_dataset("digits", val_split=0.0)
    model = ffcore.create_model(
        "ffnet", input_shape=splits.input_shape, num_classes=splits.num_classes, layers=[256]
    )
    assert isinstance(model, FFNet)
    sampler = ffcore.create_negatives("random")
    probe = ffcore.create_probe("tryall")
    probe.check(model)

    def accuracy() -> float:
        predicted = probe.predict(model, splits.test.x)
        assert predicted.shape == splits.test.y.shape
        return (predicted == splits.test.y).float().mean().item()

    before = accuracy()
    generator = torch.Generator().manual_seed(0)
    losses: list[float] = []
    for _ in range(5):
        for x, y in iterate_batches(splits.train, 64, shuffle=True, generator=generator):
            losses.append(model.train_batch(Batch(x, y), sampler).item())
    after = accuracy()
    chance = 1 / splits.num_classes
    assert after > 0.5 > 4 * chance
    assert after > before + 0.2
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first
