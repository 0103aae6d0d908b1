"""Splitting a run of layers into contiguous pipeline stages of about equal cost.

A pipeline is as fast as its slowest stage, so the split minimises the largest stage's
cost (the classic linear-partition problem, solved exactly by dynamic programming over
the prefix sums: a few layers, a few stages). The costs come from the model
(:meth:`~ffcore.interfaces.PipelineModel.pipeline_costs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from ffcore.errors import InvalidValueError


def balanced_split(costs: Sequence[float], stages: int) -> list[range]:
    """``stages`` contiguous, non-empty ranges of layer indices covering ``costs``, with
    the largest stage cost as small as it can be (earlier stages take fewer layers on a
    tie, so that the stage drawing the negatives carries less)."""
    count = len(costs)
    if stages < 1 or stages > count:
        raise InvalidValueError(
            "processes for --parallel layers",
            stages,
            f"between 1 and the model's {count} layers (each stage needs a layer)",
        )
    prefix = [0.0]
    for cost in costs:
        prefix.append(prefix[-1] + float(cost))

    @cache
    def best(first: int, parts: int) -> tuple[float, tuple[int, ...]]:
        """The best split of layers ``first..`` into ``parts``: (largest cost, cut points)."""
        if parts == 1:
            return prefix[count] - prefix[first], ()
        found: tuple[float, tuple[int, ...]] | None = None
        for cut in range(first + 1, count - parts + 2):
            rest, cuts = best(cut, parts - 1)
            largest = max(prefix[cut] - prefix[first], rest)
            if found is None or largest < found[0]:
                found = (largest, (cut, *cuts))
        assert found is not None
        return found

    bounds = [0, *best(0, stages)[1], count]
    return [range(bounds[i], bounds[i + 1]) for i in range(stages)]


def describe_split(stages: Sequence[range], costs: Sequence[float]) -> str:
    """``layers 0 | 1-2 (cost shares 40% | 60%)``: a split for the run's first lines."""
    total = sum(costs) or 1.0
    parts = [str(s.start) if len(s) == 1 else f"{s.start}-{s.stop - 1}" for s in stages]
    shares = [f"{100 * sum(costs[i] for i in s) / total:.0f}%" for s in stages]
    return f"layers {' | '.join(parts)} (estimated cost {' | '.join(shares)})"
