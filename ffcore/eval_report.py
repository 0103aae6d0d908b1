"""``ff eval --per-class``'s report: text tables, a labelled confusion-matrix image, and
TensorBoard events.

The image is drawn with Pillow (which torchvision needs, so it is always there) and
written with ``torch.utils.tensorboard`` (over the ``tensorboard`` package, a dependency
of fflib): no plotting library, and nothing from any plugin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ffcore.errors import FFLibError
from ffcore.metrics import ClassReport

#: Class names longer than this are cut in tables and on the image's axes.
NAME_WIDTH = 14


def _short(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "~"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def per_class_lines(reports: Sequence[ClassReport]) -> list[str]:
    """``label class support precision recall f1``, one line per class."""
    width = max(len("class"), *(len(_short(r.name)) for r in reports))
    lines = [
        f"{'label':>5}  {'class':<{width}}  {'support':>7}  {'precision':>9}  "
        f"{'recall':>9}  {'f1':>9}"
    ]
    for r in reports:
        lines.append(
            f"{r.label:>5}  {_short(r.name):<{width}}  {r.support:>7}  "
            f"{_number(r.precision):>9}  {_number(r.recall):>9}  {_number(r.f1):>9}"
        )
    return lines


def confusion_lines(confusion: Tensor, classes: Sequence[str]) -> list[str]:
    """The matrix as text: one row per true class, one column per predicted label."""
    count = len(classes)
    cell = max(3, len(str(int(confusion.max()) if confusion.numel() else 0)), len(str(count - 1)))
    names = ["" if name == str(label) else _short(name) for label, name in enumerate(classes)]
    name_width = max(len(name) for name in names)
    pad = name_width + 1 if name_width else 0
    head = " " * (pad + 5) + " ".join(f"{label:>{cell}}" for label in range(count))
    lines = ["rows: true class; columns: predicted label", head]
    for label, name in enumerate(names):
        cells = " ".join(f"{int(v):>{cell}}" for v in confusion[label].tolist())
        prefix = f"{label:>3} {name:<{name_width}}" if name_width else f"{label:>3}"
        lines.append(f"{prefix}  {cells}")
    return lines


def markdown(reports: Sequence[ClassReport], confusion: Tensor) -> str:
    """The per-class table and the matrix as Markdown (TensorBoard's Text tab)."""
    rows = ["| label | class | support | precision | recall | f1 |", "|---|---|---|---|---|---|"]
    for r in reports:
        rows.append(
            f"| {r.label} | {r.name} | {r.support} | {_number(r.precision)} | "
            f"{_number(r.recall)} | {_number(r.f1)} |"
        )
    names = [r.name.replace("|", "\\|") for r in reports]
    rows += ["", "| true \\ predicted | " + " | ".join(names) + " |"]
    rows.append("|---" * (len(names) + 1) + "|")
    for name, values in zip(names, confusion.tolist(), strict=True):
        rows.append(f"| {name} | " + " | ".join(str(int(v)) for v in values) + " |")
    return "\n".join(rows)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def confusion_image(confusion: Tensor, classes: Sequence[str], cell: int = 36) -> Tensor:
    """The matrix as an RGB image ``(3, H, W)`` in [0, 1]: each cell shaded by its share
    of the true class's samples (white 0 to dark blue 1) with its count written in it,
    class names along both axes (predicted ones rotated), and axis titles."""
    from PIL import Image, ImageDraw

    count = len(classes)
    font, title_font = _font(12), _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str, which: Any = font) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=which)
        return int(right - left), int(bottom - top)

    names = [
        str(label) if name == str(label) else f"{label} {_short(name)}"
        for label, name in enumerate(classes)
    ]
    name_width = max(text_size(n)[0] for n in names) + 10
    title_height = text_size("columns: predicted", title_font)[1] + 12
    top_margin = title_height + name_width + 10
    left_margin = max(name_width, text_size("rows: true", title_font)[0] + 10) + 14
    width = left_margin + count * cell + 10
    height = top_margin + count * cell + 10
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    totals = confusion.sum(dim=1, keepdim=True).clamp_min(1)
    shares = (confusion.float() / totals).tolist()
    for row in range(count):
        for col in range(count):
            share = shares[row][col]
            colour = tuple(int(255 - share * (255 - c)) for c in (8, 48, 107))
            x0, y0 = left_margin + col * cell, top_margin + row * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour, outline="#bbbbbb")
            value = str(int(confusion[row, col]))
            w, h = text_size(value)
            ink = "white" if share > 0.5 else "black"
            draw.text((x0 + (cell - w) / 2, y0 + (cell - h) / 2 - 2), value, fill=ink, font=font)
    for index, name in enumerate(names):  # true classes down the left
        w, h = text_size(name)
        y = top_margin + index * cell + (cell - h) / 2 - 2
        draw.text((left_margin - w - 6, y), name, fill="black", font=font)
    for index, name in enumerate(names):  # predicted labels along the top, rotated
        w, h = text_size(name)
        label = Image.new("RGB", (w + 4, h + 6), "white")
        ImageDraw.Draw(label).text((2, 0), name, fill="black", font=font)
        turned = label.rotate(90, expand=True)
        x = left_margin + index * cell + (cell - turned.width) // 2
        image.paste(turned, (x, top_margin - turned.height - 6))
    draw.text((left_margin, 4), "columns: predicted", fill="black", font=title_font)
    draw.text((4, top_margin - title_height), "rows: true", fill="black", font=title_font)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(height, width, 3).permute(2, 0, 1).float() / 255.0


def write_tensorboard(
    logdir: str | os.PathLike[str],
    confusion: Tensor,
    reports: Sequence[ClassReport],
    test_acc: float,
    *,
    step: int = 0,
    writer_factory: Callable[[str], Any] | None = None,
) -> Path:
    """The labelled confusion-matrix image (``eval/confusion_matrix``), the per-class
    table (``eval/per_class``, Text tab) and the accuracy (``eval/test_acc``) under
    ``logdir``; returns it."""
    target = Path(logdir)
    if target.exists() and not target.is_dir():
        raise FFLibError(f"cannot write TensorBoard logs to {target}: not a directory")
    if writer_factory is None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboard is a dependency of fflib
            raise FFLibError("--tensorboard needs the tensorboard package") from None
        writer_factory = SummaryWriter
    try:
        target.mkdir(parents=True, exist_ok=True)
        writer = writer_factory(str(target))
    except OSError as exc:
        raise FFLibError(
            f"cannot write TensorBoard logs to {target}: {exc.strerror or exc}"
        ) from None
    classes = [r.name for r in reports]
    try:
        writer.add_image("eval/confusion_matrix", confusion_image(confusion, classes), step)
        writer.add_text("eval/per_class", markdown(reports, confusion), step)
        writer.add_scalar("eval/test_acc", test_acc, step)
    finally:
        writer.close()
    return target
