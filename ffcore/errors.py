"""Errors that FFLib reports to users as one clear line.

Every error a user can cause (an unknown component name, a bad option value, missing
data, a malformed config or checkpoint) is an :class:`FFLibError`. The CLI prints its
message and exits with status 2; ``ff --debug`` shows the traceback instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FFLibError(Exception):
    """Base class of errors caused by user input; the message is meant for the user."""


class InvalidValueError(FFLibError, ValueError):
    """A value that does not fit: names the field, the value and what is expected."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"invalid {field}: {value!r} (expected {expected})")


class UnknownComponentError(FFLibError, LookupError):
    """A component name that no loaded plugin registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        message = f"unknown {kind} {name!r}"
        close = difflib.get_close_matches(name, self.available, n=3, cutoff=0.5)
        if close:
            message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        listing = ", ".join(self.available) if self.available else "none are registered"
        message += f" (available {kind} names: {listing})"
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class DataError(FFLibError):
    """Data that cannot be found, read or used (missing files, empty splits, bad labels)."""


class ConfigError(FFLibError):
    """A config file that cannot be read: syntax error, unknown key or wrong type."""


class CheckpointError(FFLibError):
    """A checkpoint that cannot be written or safely read."""


class PluginError(FFLibError):
    """A plugin that cannot be loaded or registers something invalid."""


class DivergenceError(FFLibError):
    """Training broke down: a NaN/inf loss or weight, or a layer whose units all went silent.

    ``layer`` is the module where it was seen, when one was.
    """

    def __init__(self, message: str, layer: object | None = None) -> None:
        self.layer = layer
        super().__init__(message)


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after finishing a batch.

    ``checkpoint`` is where the run was saved (``None`` if no checkpoint was asked for).
    """

    def __init__(self, signum: int, checkpoint: str | None, epoch: int, batch: int) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.batch = batch
        super().__init__(f"training stopped by signal {signum} in epoch {epoch + 1}, batch {batch}")
