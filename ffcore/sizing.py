"""How much memory a run needs, known before any of it is allocated.

The model is first built on torch's ``meta`` device, which records every tensor's shape
and dtype without storage: that gives the exact parameter count of any registered model,
for free, before the real build. From it and the data, :func:`estimate_training_memory`
adds up weights, gradients, optimizer state, the data on the device and the activations
of a training batch and an evaluation block; :func:`require_memory` refuses a run whose
estimate exceeds the memory the device has, with one line that says both, instead of an
allocator traceback or a process the kernel kills. Checkpoint loading uses the meta build
too: the weights a file holds are compared with the model its description asks for
before that model takes real memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ffcore.errors import FFLibError
from ffcore.interfaces import DataSplits, FFModel

M = TypeVar("M", bound=nn.Module)

#: Set to 0 to skip the memory check (when the estimate is wrong for a plugin's model).
MEMORY_CHECK_ENV = "FFLIB_MEMORY_CHECK"
#: Copies of each activation a training step holds (output, pre-activation, gradient).
ACTIVATION_COPIES = 3


class MemoryLimitError(FFLibError):
    """A run that needs more memory than its device has."""


def on_meta_device(build: Callable[[], M]) -> M | None:
    """``build()`` with every tensor on the ``meta`` device (shapes only, no memory).

    Errors that FFLib raises for bad options propagate; a sizes so large that torch
    cannot even describe them becomes :class:`MemoryLimitError`. ``None`` when the model
    cannot be built without memory (a plugin doing real computation in its constructor):
    the caller then goes without the pre-check.
    """
    try:
        with torch.device("meta"):
            return build()
    except FFLibError:
        raise
    except (OverflowError, RuntimeError, ValueError) as exc:
        if "overflow" in str(exc).lower():
            message = f"the model is too large to describe: {_first_line(exc)}"
            raise MemoryLimitError(message) from None
        return None
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def tensor_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes of ``tensors`` (meta tensors count as if they were real)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def _state_copies(optimizer: torch.optim.Optimizer, group: dict[str, object]) -> int:
    from ffcore.checkpoint_tensors import expected_state_keys

    keys = expected_state_keys(optimizer, group)
    return 2 if keys is None else len(keys - {"step"})


def optimizer_bytes(model: nn.Module) -> int:
    """Bytes of the optimizer state the model's optimizers keep per parameter."""
    optimizers = model.optimizers() if isinstance(model, FFModel) else []
    total = 0
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            copies = _state_copies(optimizer, {**optimizer.defaults, **group})
            total += copies * tensor_bytes(list(group["params"]))
    return total


def activation_widths(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Output features of all the model's weight matrices together: per row of input, how
    many activations one forward pass makes (weights of more than two dimensions: per
    position of the input)."""
    positions = math.prod(input_shape[1:]) if len(input_shape) > 1 else 1
    widths = 0
    for parameter in model.parameters():
        if parameter.dim() == 2:
            widths += parameter.shape[0]
        elif parameter.dim() > 2:
            widths += parameter.shape[0] * positions
    return widths


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by what they hold."""

    parameters: int
    gradients: int
    optimizer: int
    data: int
    activations: int

    @property
    def total(self) -> int:
        """All of it."""
        return self.parameters + self.gradients + self.optimizer + self.data + self.activations

    def describe(self) -> str:
        """``12.3 GiB (weights 4.1 GiB, gradients 4.1 GiB, ...)``."""
        parts = (
            ("weights", self.parameters),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer),
            ("data", self.data),
            ("activations", self.activations),
        )
        listed = ", ".join(f"{name} {human_bytes(size)}" for name, size in parts if size)
        return f"{human_bytes(self.total)} ({listed})"


def human_bytes(size: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def estimate_training_memory(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    eval_batch_size: int,
    data_bytes: int,
) -> MemoryEstimate:
    """What training ``model`` (built on any device, ``meta`` included) needs.

    Activations: a training batch runs positive and negative rows; an evaluation block
    scores up to ``eval_batch_size`` rows for every label (TryAll); each holds
    :data:`ACTIVATION_COPIES` copies of every layer's output. An estimate, not a bound:
    plugins may hold more.
    """
    parameters = [p for p in model.parameters()]
    weights = tensor_bytes(parameters) + tensor_bytes(list(model.buffers()))
    trainable = tensor_bytes([p for p in parameters if p.requires_grad])
    widths = activation_widths(model, input_shape)
    rows = max(2 * batch_size, eval_batch_size * num_classes)
    element = parameters[0].element_size() if parameters else 4
    return MemoryEstimate(
        parameters=weights,
        gradients=trainable,
        optimizer=optimizer_bytes(model),
        data=data_bytes,
        activations=ACTIVATION_COPIES * rows * widths * element,
    )


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_available() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), if there is one."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text(encoding="ascii").strip()
        used = int((base / "memory.current").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new run on ``device`` (``None``: unknown, no check).

    CPU: the kernel's ``MemAvailable`` (or free pages) and any cgroup limit; CUDA: the
    free memory the driver reports.
    """
    if device.type == "cpu":
        found = [m for m in (_meminfo_available(), _cgroup_available()) if m is not None]
        if not found and hasattr(os, "sysconf"):
            with suppress(OSError, ValueError):
                found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        return min(found) if found else None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def memory_check_enabled() -> bool:
    """Whether :func:`require_memory` checks (``FFLIB_MEMORY_CHECK=0`` turns it off)."""
    return os.environ.get(MEMORY_CHECK_ENV, "1").strip() not in ("0", "false", "no", "off")


def require_memory(estimate: MemoryEstimate, device: torch.device, what: str = "this run") -> None:
    """Raise :class:`MemoryLimitError` if ``estimate`` exceeds what ``device`` has free."""
    if not memory_check_enabled():
        return
    free = available_memory(device)
    if free is None or estimate.total <= free:
        return
    raise MemoryLimitError(
        f"{what} needs about {estimate.describe()}, but {device} has {human_bytes(free)} "
        f"free: use smaller layers or batches (set {MEMORY_CHECK_ENV}=0 to skip this check)"
    )


def data_bytes(data: DataSplits) -> int:
    """Bytes of every split's inputs and labels."""
    splits = [s for s in (data.train, data.val, data.test) if s is not None]
    return tensor_bytes([t for s in splits for t in (s.x, s.y)])


def check_run_memory(
    build: Callable[[], nn.Module],
    data: DataSplits,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device,
) -> MemoryEstimate | None:
    """Build the model on the ``meta`` device and refuse the run if it will not fit.

    The data counts only off the CPU (on the CPU it is already in memory); TryAll's
    evaluation block scores every label of ``eval_batch_size`` samples at once on
    accelerators, and blocks of about that many rows on the CPU. Returns the estimate
    (``None`` when the model cannot be outlined or the check is off).
    """
    if not memory_check_enabled():
        return None
    outline = on_meta_device(build)
    if outline is None:
        return None
    on_cpu = device.type == "cpu"
    estimate = estimate_training_memory(
        outline,
        input_shape=tuple(data.input_shape),
        num_classes=1 if on_cpu else data.num_classes,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        data_bytes=0 if on_cpu else data_bytes(data),
    )
    require_memory(estimate, device)
    return estimate


@contextmanager
def allocating(what: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into one :class:`MemoryLimitError`
    line (for what the estimate could not foresee)."""
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise MemoryLimitError(
            f"out of memory while allocating {what}: {_first_line(exc)}"
        ) from None
    except RuntimeError as exc:
        text = str(exc)
        if "alloc" not in text.lower() and "out of memory" not in text.lower():
            raise
        raise MemoryLimitError(
            f"out of memory while allocating {what}: {_first_line(exc)}"
        ) from None
