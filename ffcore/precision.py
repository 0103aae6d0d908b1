"""Numeric precision of training and prediction: ``fp32`` or mixed ``bf16``.

``fp32`` (the default) computes everything in 32-bit floats. ``bf16`` is mixed
precision: the matrix products run in bfloat16 (through :func:`torch.autocast`), and
everything else stays in 32-bit floats: the weights, the optimizer state, the
activations (FFLib's layers cast each product back before scale, bias and activation),
the goodness and the losses. Where the hardware multiplies bfloat16 natively (CPUs with
AMX or AVX512-BF16, recent GPUs) the products run several times faster; elsewhere bf16
only adds casts.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from ffcore.choices import PRECISION_NAMES
from ffcore.errors import InvalidValueError

#: Precision names (:data:`~ffcore.choices.PRECISION_NAMES`) and the dtype their matrix
#: products run in (``None``: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = dict(
    zip(PRECISION_NAMES, (None, torch.bfloat16), strict=True)
)

#: Device types where FFLib offers bfloat16 autocast. Others (MPS...) are refused with a
#: clear error rather than left to torch, which may turn autocast off with only a warning.
_AUTOCAST_DEVICES = ("cpu", "cuda")


def check_precision(precision: str, field: str = "precision") -> str:
    """Return ``precision`` if it names one of :data:`PRECISIONS`, else fail naming it."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InvalidValueError(field, precision, " or ".join(map(repr, PRECISIONS)))
    return precision


def autocast(device: torch.device | str, precision: str) -> AbstractContextManager[object]:
    """The context that runs code at ``precision`` on ``device``.

    ``fp32`` gives a context that changes nothing; ``bf16`` gives ``torch.autocast``
    over ``device``'s type with bfloat16 and no cast cache. Use it around training steps
    and predictions alike::

        with autocast(device, "bf16"):
            loss = model.train_batch(Batch(x, y), negatives)
    """
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return nullcontext()
    device_type = torch.device(device).type
    if device_type not in _AUTOCAST_DEVICES:
        raise InvalidValueError(
            "precision",
            precision,
            f"'fp32' on device type {device_type!r} (bf16 needs one of "
            f"{', '.join(_AUTOCAST_DEVICES)})",
        )
    # No cast cache: autocast would otherwise keep each weight's bfloat16 copy for the
    # whole block, and FF layers update their weights inside it (a recurrent net many
    # times per batch), so later passes would multiply with the weights before the update.
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)


def full_precision(device: torch.device | str) -> AbstractContextManager[object]:
    """A block that runs in the tensors' own precision even inside :func:`autocast`.

    For small products whose result must not be rounded to bfloat16 (a label code's
    share of a pre-activation, a read-out's ten class scores): they cost little in
    float32 and carry what bfloat16 would lose.
    """
    device_type = torch.device(device).type
    if not torch.is_autocast_enabled(device_type):
        return nullcontext()
    return torch.autocast(device_type, enabled=False)


def cast_back(product: Tensor, weight: Tensor) -> Tensor:
    """``product`` in ``weight``'s dtype (``product`` itself when it has it already).

    Under ``bf16`` a layer's product comes out in bfloat16; FFLib's layers cast it back
    before scale, bias and activation. Left in bfloat16, a layer's output would make the
    next layer's per-row normalising factor bfloat16 too, moving each row's goodness by
    up to 0.4%, a different amount for every label TryAll tries: enough to reorder close
    labels (a 3-epoch Fashion-MNIST FFNet lost 3.5% test accuracy to it).
    """
    return product.to(weight.dtype)
