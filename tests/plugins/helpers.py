"""Test helpers for the built-in plugins: record the rows a method is called with, the
layer steps an observer hears of, and the image drives a first layer computes."""

from __future__ import annotations

from typing import Any

import pytest
from torch import Tensor

from ffcore.interfaces import FFLayer, LabelAppender, LayerStepResult


def record_rows(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """Patch ``owner.name`` to record its first argument's row count at every call."""
    rows: list[int] = []
    real = getattr(owner, name)

    def spy(first: Tensor, *args: Any, **kwargs: Any) -> Any:
        rows.append(first.shape[0])
        return real(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return rows


class StepRecorder:
    """A layer observer that keeps every ``(index, layer, result)`` it is told of."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, FFLayer, LayerStepResult]] = []

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        self.calls.append((index, layer, result))


def record_drives(monkeypatch: pytest.MonkeyPatch, first: LabelAppender) -> list[Tensor]:
    """Patch ``first.image_drive`` (a first layer's ``W_x · x``) to keep what it computes."""
    drives: list[Tensor] = []
    real = first.image_drive

    def counted(images: Tensor) -> Tensor:
        drives.append(real(images))
        return drives[-1]

    monkeypatch.setattr(first, "image_drive", counted)
    return drives
