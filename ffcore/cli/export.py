"""``ff export CHECKPOINT --format F -o FILE``: a trained model for other tools."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ffcore.cli.errors import CLIError
from ffcore.cli.predict import load_for_cli, model_summary

#: Kept here as well as in :mod:`ffcore.export` so that ``ff --help`` needs no torch.
FORMAT_CHOICES = ("safetensors", "onnx", "torchscript", "pt2")
SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}


def default_output(checkpoint: str, fmt: str) -> Path:
    """``runs/x.pt`` -> ``runs/x.onnx`` (``runs/x.torchscript.pt`` for TorchScript)."""
    source = Path(checkpoint)
    if fmt == "torchscript":
        return source.with_suffix(".torchscript.pt")
    return source.with_suffix(SUFFIXES[fmt])


@click.command("export")
@click.argument("checkpoint")
@click.option(
    "--format",
    "-f",
    "fmt",
    metavar="|".join(FORMAT_CHOICES),
    help="safetensors: weights + description, ffcore.load reads it; onnx (needs "
    "fflib[export]), torchscript, pt2 (torch.export): the inference graph.",
)
@click.option(
    "--out",
    "-o",
    metavar="FILE",
    help="Output file. [default: the checkpoint's name with the format's suffix]",
)
@click.option("--probe", help="Probe whose scores the graph returns (default: the trained one).")
@click.option("--device", default="cpu", show_default=True, help="Device to trace on.")
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Run the exported file on a few inputs and compare it with the model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export_command(
    checkpoint: str,
    fmt: str | None,
    out: str | None,
    probe: str | None,
    device: str,
    check: bool,
    as_json: bool,
) -> None:
    """Write the model in CHECKPOINT to a file other tools load.

    The graph formats take float inputs (batch, *input shape) on the [0, 1] scale (raw
    integers divided by raw_max, e.g. 8-bit pixels / 255), standardise them as the training
    data were, and return every label's score and the predicted label.
    """
    from ffcore.errors import InvalidValueError
    from ffcore.export import export_model

    if fmt is None:
        raise CLIError(f"ff export needs --format: one of {', '.join(FORMAT_CHOICES)}")
    if fmt not in FORMAT_CHOICES:
        raise InvalidValueError("--format", fmt, " or ".join(FORMAT_CHOICES))
    trained = load_for_cli(checkpoint, device=device, probe=probe)
    target = Path(out) if out else default_output(checkpoint, fmt)
    result = export_model(trained, fmt, target, check=check)
    size = result.path.stat().st_size
    if as_json:
        click.echo(
            json.dumps(
                {
                    **model_summary(checkpoint, trained),
                    "format": fmt,
                    "path": str(result.path),
                    "bytes": size,
                    "labels_equal": result.labels_equal,
                    "max_score_difference": result.max_score_difference,
                }
            )
        )
        return
    click.echo(
        f"exported {trained.model_name} (probe {trained.probe_name}, {trained.score_kind} "
        f"scores) to {result.path} ({fmt}, {size / 1e6:.2f} MB)"
    )
    if result.labels_equal is None:
        if check:
            click.echo("not checked: no runtime for it here (pip install onnxruntime)")
        return
    verdict = "the same labels as" if result.labels_equal else "DIFFERENT labels from"
    click.echo(
        f"checked on random inputs: {verdict} the model, scores within "
        f"{result.max_score_difference:.3g}"
    )
    if not result.labels_equal:
        raise click.exceptions.Exit(1)
