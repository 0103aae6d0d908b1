"""Writing TensorBoard event files: a thin layer over ``torch.utils.tensorboard``."""

from __future__ import annotations

import atexit
import contextlib
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as _hparams

from ffdebug.errors import TracingError
from ffdebug.stats import Fetched

#: ``torch.utils.tensorboard.summary.hparams``: (experiment, session start, session end).
hparams: Callable[..., tuple[Any, Any, Any]] = _hparams
#: Metric tags the HParams dashboard shows next to each run's settings.
HPARAM_METRICS = ("hparam/test_acc", "hparam/val_acc", "hparam/train_loss")


class EventWriter:
    """A ``SummaryWriter`` for one log directory, closed exactly once (at exit at the latest).

    ``filename_suffix`` ends the event file's name: the ranks of a run that several
    processes train (``.rank1``) write their own files into the one run directory.
    """

    def __init__(self, logdir: str | os.PathLike[str], filename_suffix: str = "") -> None:
        self.logdir = Path(logdir)
        if self.logdir.exists() and not self.logdir.is_dir():
            raise TracingError(f"cannot write TensorBoard logs to {self.logdir}: not a directory")
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            # a long queue: the training thread hands events over without waiting
            self.writer = SummaryWriter(
                log_dir=str(self.logdir),
                max_queue=1000,
                flush_secs=30,
                filename_suffix=filename_suffix,
            )
        except OSError as exc:
            raise TracingError(
                f"cannot write TensorBoard logs to {self.logdir}: {exc.strerror or exc}"
            ) from None
        self.closed = False
        atexit.register(self.close)

    def write(self, fetched: Fetched, step: int) -> None:
        """Every scalar and histogram of a fetched :class:`~ffdebug.stats.Packet`."""
        for tag, value in fetched.scalars.items():
            self.writer.add_scalar(tag, value, step)
        for tag, h in fetched.histograms.items():
            self.writer.add_histogram_raw(
                tag,
                min=h.min,
                max=h.max,
                num=h.num,
                sum=h.sum,
                sum_squares=h.sum_squares,
                bucket_limits=h.bucket_limits,
                bucket_counts=h.bucket_counts,
                global_step=step,
            )

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        """A Markdown text summary (TensorBoard's Text tab)."""
        self.writer.add_text(tag, markdown, step)

    def image(self, tag: str, image: Tensor, step: int = 0) -> None:
        """An RGB image, ``(3, H, W)`` with values in [0, 1]."""
        self.writer.add_image(tag, image, step, dataformats="CHW")

    def embedding(
        self,
        tag: str,
        matrix: Tensor,
        labels: Sequence[str],
        images: Tensor | None,
        step: int = 0,
    ) -> None:
        """An embedding-projector entry: one row per sample, labelled (and pictured)."""
        # torch prints a warning when the entry's folder exists (a rerun): overwriting is meant
        with contextlib.redirect_stdout(io.StringIO()):
            self.writer.add_embedding(
                matrix.detach().float().cpu(),
                metadata=list(labels),
                label_img=None if images is None else images.detach().float().cpu(),
                global_step=step,
                tag=tag,
            )

    def custom_scalars(self, layout: Mapping[str, Mapping[str, list[Any]]]) -> None:
        """A Custom Scalars dashboard layout: charts that overlay several tags."""
        self.writer.add_custom_scalars(dict(layout))

    def heat_map(
        self,
        tag: str,
        values: Tensor,
        *,
        rows: Sequence[str],
        columns: Sequence[str],
        title: str,
        diverging: bool = False,
        step: int = 0,
    ) -> None:
        """``(rows, columns)`` values as a labelled chart (axes, names, a colour bar per
        row) when matplotlib is installed (``pip install ".[plots]"`` from a clone), else
        as a plain coloured grid (:func:`heat_map`)."""
        from ffdebug.plots import heat_map_figure

        figure = heat_map_figure(values, rows, columns, title=title, diverging=diverging)
        if figure is None:
            self.image(tag, heat_map(values, diverging=diverging), step)
        else:
            self.writer.add_figure(tag, figure, step, close=True)

    def hparams_start(self, settings: Mapping[str, Any]) -> None:
        """The run's settings for the HParams dashboard (metrics come at the end)."""
        values = {key: hparam_value(value) for key, value in settings.items()}
        experiment, start, _ = hparams(values, dict.fromkeys(HPARAM_METRICS, 0.0))
        file_writer = cast(Any, self.writer).file_writer
        file_writer.add_summary(experiment)
        file_writer.add_summary(start)

    def hparams_end(self, metrics: Mapping[str, float], step: int) -> None:
        """The HParams metrics and the session's end."""
        for tag, value in metrics.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, step)
        _, _, end = hparams({}, {})
        cast(Any, self.writer).file_writer.add_summary(end)

    def flush(self) -> None:
        """Write what is queued to disk."""
        if not self.closed:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        self.writer.close()


def goodness_layout(layers: int) -> dict[str, dict[str, list[Any]]]:
    """The Custom Scalars layout of a traced run: for each FF layer one chart with its
    positive and negative goodness and its threshold, and one chart of every layer's loss."""
    tags = ("goodness_pos_mean", "goodness_neg_mean", "threshold")
    # the dashboard reads each tag as a regular expression: anchored, it is that tag alone
    charts: dict[str, list[Any]] = {
        f"layer{i} goodness": ["Multiline", [f"^layer{i}/{tag}$" for tag in tags]]
        for i in range(layers)
    }
    charts["loss of every layer"] = ["Multiline", [f"^layer{i}/loss$" for i in range(layers)]]
    return {"FF layers": charts}


def hparam_value(value: object) -> str | float | int:
    """A setting as the HParams dashboard takes it: numbers stay, the rest becomes text."""
    if value is None:
        return "default"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (TensorBoard's Text tab renders it)."""

    def cell(value: object) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# Colour anchors (RGB in [0, 1]): viridis-like for values, blue-white-red around zero.
_SEQUENTIAL = (
    (0.267, 0.005, 0.329),
    (0.229, 0.322, 0.546),
    (0.128, 0.567, 0.551),
    (0.369, 0.789, 0.383),
    (0.993, 0.906, 0.144),
)
_DIVERGING = ((0.130, 0.400, 0.674), (0.969, 0.969, 0.969), (0.698, 0.094, 0.169))


def heat_map(values: Tensor, *, diverging: bool = False, cell: int = 24) -> Tensor:
    """``(rows, cols)`` values as an RGB image ``(3, rows·cell, cols·cell)`` in [0, 1].

    Each row (a layer) is scaled on its own, since layers' goodness differs in scale:
    sequential maps stretch the row's min..max from dark purple to yellow; diverging ones
    put zero at white, negative values blue and positive red, scaled by the row's largest
    magnitude. NaN cells are grey.
    """
    data = values.detach().float().cpu()
    finite = torch.isfinite(data)
    safe = torch.where(finite, data, torch.zeros_like(data))
    anchors = torch.tensor(_DIVERGING if diverging else _SEQUENTIAL)
    if diverging:
        scale = safe.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        unit = safe / scale * 0.5 + 0.5
    else:
        inf = torch.tensor(float("inf"))
        low = torch.where(finite, data, inf).amin(dim=1, keepdim=True)
        high = torch.where(finite, data, -inf).amax(dim=1, keepdim=True)
        low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
        high = torch.where(torch.isfinite(high), high, low)
        unit = (safe - low) / (high - low).clamp_min(1e-12)
    unit = unit.clamp(0.0, 1.0)
    position = unit * (len(anchors) - 1)
    lower = position.floor().long().clamp(max=len(anchors) - 2)
    weight = (position - lower.float()).unsqueeze(-1)
    colours = anchors[lower] * (1 - weight) + anchors[lower + 1] * weight  # (rows, cols, 3)
    colours[~finite] = 0.5
    image = colours.permute(2, 0, 1)
    return image.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2).contiguous()
