"""Checks for option values: each returns the value or raises an error naming it.

A bad value gets :class:`~ffcore.errors.InvalidValueError` with the field, the value and
what is expected, so ``-O model.frames=0`` reads ``invalid frames: 0 (expected a positive
integer)`` instead of a traceback. ``bool`` is not an integer or a number here, although
Python says it is: ``layers = [true]`` is a mistake, not a width of 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ffcore.errors import InvalidValueError


def integer(field: str, value: object, *, minimum: int | None = None, expected: str = "") -> int:
    """``value`` if it is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(field, value, expected or "an integer")
    if minimum is not None and value < minimum:
        raise InvalidValueError(field, value, expected or f"an integer >= {minimum}")
    return value


def positive_int(field: str, value: object, expected: str = "a positive integer") -> int:
    """``value`` if it is an integer of at least 1."""
    return integer(field, value, minimum=1, expected=expected)


def non_negative_int(field: str, value: object, expected: str = "a non-negative integer") -> int:
    """``value`` if it is an integer of at least 0."""
    return integer(field, value, minimum=0, expected=expected)


def int_list(
    field: str,
    value: object,
    *,
    minimum: int = 1,
    allow_empty: bool = False,
    expected: str = "",
) -> list[int]:
    """``value`` as a list if it is a sequence of integers of at least ``minimum`` (a
    string is not a sequence of integers); empty only with ``allow_empty``."""
    expected = expected or (
        f"a {'' if allow_empty else 'non-empty '}list of integers >= {minimum}"
        if minimum != 1
        else f"a {'' if allow_empty else 'non-empty '}list of positive integers"
    )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidValueError(field, value, expected)
    items = [integer(field, item, minimum=minimum, expected=expected) for item in value]
    if not items and not allow_empty:
        raise InvalidValueError(field, value, expected)
    return items


def choice(field: str, value: object, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise InvalidValueError(field, value, f"one of {', '.join(options)}")
    return value


def number(
    field: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    expected: str = "",
) -> float:
    """``value`` as a float if it is a finite number in the interval from ``low`` to
    ``high`` (each end included unless ``low_open`` / ``high_open``)."""
    if not expected:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        expected = (
            "a finite number"
            if (low, high) == (-math.inf, math.inf)
            else f"a number in {left}{low:g}, {high:g}{right}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(field, value, expected)
    if (
        not math.isfinite(value)
        or (value <= low if low_open else value < low)
        or (value >= high if high_open else value > high)
    ):
        raise InvalidValueError(field, value, expected)
    return float(value)


def positive_number(field: str, value: object, expected: str = "a positive finite number") -> float:
    """``value`` as a float if it is a finite number above zero."""
    return number(field, value, low=0.0, low_open=True, expected=expected)


def boolean(field: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False`` (not a truthy number or string)."""
    if not isinstance(value, bool):
        raise InvalidValueError(field, value, "true or false")
    return value
