"""Labelled charts for TensorBoard, drawn with matplotlib when it is installed.

matplotlib is an optional extra (``pip install ".[plots]"`` from a clone): it weighs tens
of megabytes and takes about a second to import, which tracing needs only for a few charts.
Without it, :func:`heat_map_figure` returns ``None`` and the caller writes the plain
coloured grid of :func:`ffdebug.events.heat_map` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def heat_map_figure(
    values: Tensor,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str,
    diverging: bool = False,
) -> Figure | None:
    """``(rows, columns)`` values as a figure: one strip per row with its own colour bar
    (layers' goodness differs in scale), every cell's value written in it, the rows and
    columns named (layers and class names). ``diverging`` centres the colours on zero
    (blue below, red above); otherwise they run from each row's lowest to its highest.
    ``None`` when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    data = values.detach().float().cpu()
    if data.shape != (len(rows), len(columns)):
        raise ValueError(f"values of shape {tuple(data.shape)} for {len(rows)}x{len(columns)}")
    width = max(5.0, 0.75 * len(columns) + 2.0)
    figure = Figure(figsize=(width, 0.9 * len(rows) + 1.6), layout="constrained")
    axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    for index, (axis, name) in enumerate(zip(axes, rows, strict=True)):
        row = data[index]
        finite = row[torch.isfinite(row)]
        if diverging:
            bound = float(finite.abs().max()) if len(finite) else 1.0
            low, high, colours = -max(bound, 1e-12), max(bound, 1e-12), "RdBu_r"
        else:
            low = float(finite.min()) if len(finite) else 0.0
            high = float(finite.max()) if len(finite) else 1.0
            colours = "viridis"
        image = axis.imshow(row.numpy()[None, :], aspect="auto", cmap=colours, vmin=low, vmax=high)
        for column, value in enumerate(row.tolist()):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # light text on dark cells
            colour = "white" if dark else "black"
            axis.text(column, 0, f"{value:.3g}", ha="center", va="center", fontsize=7, color=colour)
        axis.set_yticks([0], [name])
        last = index == len(rows) - 1
        axis.set_xticks(range(len(columns)), list(columns) if last else [], rotation=45, ha="right")
        figure.colorbar(image, ax=axis, pad=0.01, aspect=8)
    axes[-1].set_xlabel("class")
    figure.suptitle(title, fontsize=10)
    return figure
