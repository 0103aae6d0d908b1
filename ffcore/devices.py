"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and CPU float modes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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


#: Set to 1 to keep denormal floats (FFLib flushes them to zero by default).
KEEP_DENORMALS_ENV = "FFLIB_KEEP_DENORMALS"


def flush_denormals() -> bool:
    """Treat denormal floats as zero on the CPU (FTZ/DAZ); ``True`` where that took effect.

    Adam's moment estimates for weights that get no gradient for a while (dead units,
    always-blank pixels) decay geometrically through the denormal range, where x86 float
    arithmetic is many times slower: without this, an FF+C epoch on Fashion-MNIST grows
    from about 30 s to 45 s after two epochs, the optimizer step alone taking 9x longer.
    Values below 1.2e-38 carry nothing an FF layer learns from.

    The mode belongs to the calling thread and the threads it starts later, so call it
    before the first parallel torch operation for torch's worker threads to share it:
    ``ff`` does at start-up; from Python, call it at the top of a training script
    (``train`` itself flushes only in its own thread, and restores the mode after).
    Setting the environment variable ``FFLIB_KEEP_DENORMALS=1`` makes this a no-op.
    """
    if os.environ.get(KEEP_DENORMALS_ENV, "") not in ("", "0"):
        return False
    return bool(torch.set_flush_denormal(True))


def denormals_flushed() -> bool:
    """Whether the calling thread currently flushes denormal floats to zero."""
    return float((torch.tensor([1e-40]) * 1.0)[0]) == 0.0


@contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush denormals in the calling thread inside the block; restore the mode after."""
    changed = not denormals_flushed() and flush_denormals()
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)
