"""Test helpers for the built-in plugins: record how many rows a method is called with."""

from __future__ import annotations

from typing import Any

import pytest
from torch import Tensor


def record_rows(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """Patch ``owner.name`` to record its first argument's row count at every call."""
    rows: list[int] = []
    real = getattr(owner, name)

    def spy(first: Tensor, *args: Any, **kwargs: Any) -> Any:
        rows.append(first.shape[0])
        return real(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return rows
