"""Cheap in-memory augmentation of image training batches.

A spec such as ``"crop2,flip"`` names the steps, applied in order to every training batch
(never to evaluation data): ``cropN`` pads each image by ``N`` pixels on every side with
its own background (its smallest value, which is the blank paper of a standardised
scan) and cuts a random window of the original size, i.e. shifts it by up to ``N``
pixels; ``flip`` mirrors a random half of the images left to right. Both work on the
batch tensor in one indexing step each, so they cost far less than a layer's step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from ffcore.errors import InvalidValueError
from torch import Tensor

_CROP = re.compile(r"crop([1-9][0-9]?)")
EXPECTED = "a comma-separated list of cropN (N = 1..99 pixels) and flip, or '' for none"


@dataclass(frozen=True)
class Augmentation:
    """Random shifts (``crop``: padding in pixels, 0 for none) and mirror images (``flip``)."""

    crop: int = 0
    flip: bool = False

    @classmethod
    def parse(cls, spec: str | None) -> Augmentation:
        """The augmentation a spec names (``"crop2,flip"``; ``""`` or ``None``: none)."""
        if spec is None:
            return cls()
        if not isinstance(spec, str):
            raise InvalidValueError("augment", spec, EXPECTED)
        crop, flip = 0, False
        for step in (part.strip() for part in spec.split(",") if part.strip()):
            match = _CROP.fullmatch(step)
            if match is not None and not crop:
                crop = int(match.group(1))
            elif step == "flip" and not flip:
                flip = True
            else:
                raise InvalidValueError("augment", spec, EXPECTED + ", each at most once")
        return cls(crop, flip)

    @property
    def spec(self) -> str:
        """The spec this augmentation parses from (``""`` when it does nothing)."""
        steps = ([f"crop{self.crop}"] if self.crop else []) + (["flip"] if self.flip else [])
        return ",".join(steps)

    def __bool__(self) -> bool:
        return bool(self.crop or self.flip)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augmented copies of images ``x`` ``(B, C, H, W)``; random draws from ``generator``
        (the global generator when ``None``, which the trainer seeds)."""
        if self.crop:
            x = self.shift(x, self.crop, generator)
        if self.flip:
            x = self.mirror(x, generator)
        return x

    @staticmethod
    def shift(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
        """Each image shifted by up to ``pad`` pixels each way, the gap filled with its
        smallest value."""
        batch, channels, height, width = x.shape
        background = x.amin(dim=(1, 2, 3), keepdim=True)
        padded = F.pad(x - background, (pad, pad, pad, pad)) + background
        offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator)
        offsets = offsets.to(x.device)
        rows = (offsets[0, :, None] + torch.arange(height, device=x.device)).view(batch, 1, -1, 1)
        cols = (offsets[1, :, None] + torch.arange(width, device=x.device)).view(batch, 1, 1, -1)
        samples = torch.arange(batch, device=x.device).view(batch, 1, 1, 1)
        planes = torch.arange(channels, device=x.device).view(1, channels, 1, 1)
        return padded[samples, planes, rows, cols]

    @staticmethod
    def mirror(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random half (in expectation) of the images mirrored left to right."""
        chosen = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
        return torch.where(chosen.view(-1, 1, 1, 1), x.flip(-1), x)
