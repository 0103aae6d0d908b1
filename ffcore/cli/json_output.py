"""JSON that every parser reads: NaN and infinities become ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON; a weight statistic
of an empty or diverged layer, or a loss with ``--on-nonfinite off``, can be either.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def json_line(value: Any, *, indent: int | None = None) -> str:
    """``value`` as strict JSON (``allow_nan=False``), non-finite numbers as ``null``."""
    return json.dumps(finite_or_null(value), indent=indent, allow_nan=False)
