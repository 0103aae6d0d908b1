"""Augmentation of training batches: shifts filled with the background, mirror images,
reproducible under a seed, never applied outside training."""

from __future__ import annotations

import pytest
import torch
from ffcore.errors import InvalidValueError

from fflib_conv.augment import Augmentation


def test_parse_reads_the_steps_and_round_trips() -> None:
    assert Augmentation.parse("crop2,flip") == Augmentation(crop=2, flip=True)
    assert Augmentation.parse(" flip ") == Augmentation(flip=True)
    assert Augmentation.parse("") == Augmentation.parse(None) == Augmentation()
    assert not Augmentation.parse("")
    assert Augmentation.parse("flip,crop3").spec == "crop3,flip"


@pytest.mark.parametrize("spec", ["crop", "crop0", "rotate", "flip,flip", "crop1,crop2", 3])
def test_a_bad_spec_names_the_field(spec: object) -> None:
    with pytest.raises(InvalidValueError, match="augment"):
        Augmentation.parse(spec)  # type: ignore[arg-type]


def test_shapes_and_dtype_are_kept() -> None:
    x = torch.randn(5, 3, 9, 7)
    out = Augmentation(crop=2, flip=True)(x)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_a_shift_moves_the_image_and_fills_the_gap_with_its_background() -> None:
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)  # background (smallest value): 1
    torch.manual_seed(0)
    for _ in range(20):
        out = Augmentation.shift(x, 1)
        background = out == 1.0
        content = out[~background]
        # Each shifted image is a window of x padded with 1s: its values are x's, in order.
        assert set(content.tolist()) <= set(x.flatten().tolist())
        assert torch.equal(content, content.sort().values)
    offsets = {tuple(Augmentation.shift(x, 1)[0, 0, 1, 1:3].tolist()) for _ in range(50)}
    assert len(offsets) > 3  # the windows vary


def test_flip_mirrors_about_half_of_the_images() -> None:
    x = torch.randn(400, 1, 3, 5)
    out = Augmentation(flip=True)(x, torch.Generator().manual_seed(0))
    mirrored = (out == x.flip(-1)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert bool((mirrored | kept).all())
    assert 150 < int(mirrored.sum()) < 250


def test_the_same_seed_gives_the_same_batch() -> None:
    x = torch.randn(16, 1, 8, 8)
    augment = Augmentation(crop=2, flip=True)
    first = augment(x, torch.Generator().manual_seed(3))
    again = augment(x, torch.Generator().manual_seed(3))
    other = augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    torch.manual_seed(5)
    global_first = augment(x)
    torch.manual_seed(5)
    assert torch.equal(global_first, augment(x))
