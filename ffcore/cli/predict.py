"""``ff predict CHECKPOINT INPUT...``: classify image files or tensor files."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ffcore.cli.errors import CLIError

if TYPE_CHECKING:
    from ffcore.inference import TrainedModel


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Python warnings raised inside, printed as one ``Warning:`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)


def load_for_cli(
    checkpoint: str, *, device: str, probe: str | None, batch_size: int = 1000
) -> TrainedModel:
    """:func:`ffcore.inference.load` with its warnings as ``Warning:`` lines."""
    from ffcore.inference import load

    with warnings_as_lines():
        return load(checkpoint, device=device, probe=probe, batch_size=batch_size)


def model_summary(checkpoint: str, trained: TrainedModel) -> dict[str, Any]:
    """What a command's JSON says about the model it loaded, the same in every command."""
    return {
        "checkpoint": checkpoint,
        "model": trained.model_name,
        "probe": trained.probe_name,
        "score_kind": trained.score_kind,
    }


def _top(scores: list[float], probabilities: list[float], classes: tuple[str, ...], k: int) -> Any:
    order = sorted(range(len(scores)), key=lambda label: -probabilities[label])[:k]
    return [
        {
            "label": label,
            "class": classes[label],
            "probability": probabilities[label],
            "score": scores[label],
        }
        for label in order
    ]


def print_table(rows: list[dict[str, Any]], top_k: int, echo: Callable[[str], None]) -> None:
    """One line per input and rank: input, rank, label, class, probability, score."""
    width = max([len("input"), *(len(row["input"]) for row in rows)])
    class_width = max([len("class"), *(len(t["class"]) for row in rows for t in row["top_k"])])
    rank = "  rank" if top_k > 1 else ""
    echo(
        f"{'input':<{width}}{rank}  label  {'class':<{class_width}}  probability  " f"{'score':>10}"
    )
    for row in rows:
        for position, entry in enumerate(row["top_k"], start=1):
            rank_cell = f"  {position:>4}" if top_k > 1 else ""
            echo(
                f"{row['input']:<{width}}{rank_cell}  {entry['label']:>5}  "
                f"{entry['class']:<{class_width}}  {entry['probability']:>11.4f}  "
                f"{entry['score']:>10.4g}"
            )


@click.command("predict")
@click.argument("checkpoint")
@click.argument("inputs", nargs=-1)
@click.option(
    "--top-k",
    "-k",
    type=int,
    default=1,
    show_default=True,
    help="Show the K most probable labels of each input.",
)
@click.option(
    "--resize",
    is_flag=True,
    help="Scale images to the model's height and width (without it, another size is an error).",
)
@click.option("--probe", help="Probe name (default: the one it was trained with).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, mps.")
@click.option(
    "--batch-size", type=int, default=1000, show_default=True, help="Inputs per forward pass."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every label's score.")
def predict_command(
    checkpoint: str,
    inputs: tuple[str, ...],
    top_k: int,
    resize: bool,
    probe: str | None,
    device: str,
    batch_size: int,
    as_json: bool,
) -> None:
    """Classify INPUT files with the model saved in CHECKPOINT.

    INPUT is an image file (PNG, JPEG...: read as the model's channels; --resize to
    scale it) or a .npy / .pt file holding a tensor of raw inputs (integers as the data set
    stores them, e.g. 0-255 pixels, or floats in [0, 1]), one input per row. The
    checkpoint's preprocessing scales them as the training data were. CHECKPOINT may also
    be a .safetensors file from ff export.
    """
    from ffcore.errors import InvalidValueError
    from ffcore.input_files import read_inputs

    if not inputs:
        raise CLIError("ff predict needs at least one INPUT file (an image, .npy or .pt)")
    if batch_size < 1:
        raise InvalidValueError("--batch-size", batch_size, "a positive integer")
    trained = load_for_cli(checkpoint, device=device, probe=probe, batch_size=batch_size)
    if not 1 <= top_k <= trained.num_classes:
        raise InvalidValueError("--top-k", top_k, f"1 to {trained.num_classes} (the labels)")
    groups = read_inputs(inputs, trained.input_shape, resize=resize)
    if trained.preprocessing is None and any(group.from_images for group in groups):
        raise CLIError(
            f"{checkpoint} records no input preprocessing (saved before FFLib recorded "
            "it), so images cannot be scaled as its training data were: retrain it, or "
            "pass a .npy/.pt tensor of inputs standardised as its training data were"
        )
    rows: list[dict[str, Any]] = []
    with warnings_as_lines():
        for group in groups:
            scores = trained.scores(group.x)
            probabilities = scores.softmax(dim=1)
            labels = scores.argmax(dim=1)  # what the probes predict: the best score
            for index, name in enumerate(group.names):
                row_scores = scores[index].tolist()
                row_probabilities = probabilities[index].tolist()
                label = int(labels[index])
                rows.append(
                    {
                        "input": name,
                        "label": label,
                        "class": trained.classes[label],
                        "probability": row_probabilities[label],
                        "scores": row_scores,
                        "probabilities": row_probabilities,
                        "top_k": _top(row_scores, row_probabilities, trained.classes, top_k),
                    }
                )
    if as_json:
        click.echo(
            json.dumps(
                {
                    **model_summary(checkpoint, trained),
                    "classes": list(trained.classes),
                    "predictions": rows,
                }
            )
        )
        return
    print_table(rows, top_k, click.echo)
