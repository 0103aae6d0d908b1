"""A per-epoch progress bar and epoch lines for ``ff train``."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any

import click


def format_metrics(metrics: dict[str, float]) -> str:
    """``loss 0.1234  val_acc 91.2%  (1.3s)``."""
    parts = []
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if "val_acc" in metrics:
        parts.append(f"val_acc {100 * metrics['val_acc']:.2f}%")
    if "epoch_seconds" in metrics:
        parts.append(f"({metrics['epoch_seconds']:.1f}s)")
    return "  ".join(parts)


class ClickProgress:
    """Draws a click progress bar on stderr for each epoch, then prints its metrics."""

    def __init__(self, show_bar: bool = True) -> None:
        self.show_bar = show_bar and sys.stderr.isatty()
        self._bar: AbstractContextManager[Any] | None = None
        self._handle: Any = None
        self._epochs = 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self._epochs = epochs
        if self.show_bar:
            width = len(str(epochs))
            self._bar = click.progressbar(
                length=batches, label=f"epoch {epoch:>{width}}/{epochs}", file=sys.stderr
            )
            self._handle = self._bar.__enter__()

    def advance(self) -> None:
        if self._handle is not None:
            self._handle.update(1)

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = self._handle = None
        width = len(str(self._epochs))
        click.echo(f"epoch {epoch:>{width}}/{self._epochs}  {format_metrics(metrics)}")
