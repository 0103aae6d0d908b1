"""Device names: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""

from __future__ import annotations

import torch

from ffcore.errors import InvalidValueError

DEVICE_CHOICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; others must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValueError("device", name, DEVICE_CHOICES) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError("device", name, "an available device (CUDA is not available)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidValueError("device", name, "an available device (MPS is not available)")
    return device
