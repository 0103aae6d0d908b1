"""``ff eval CHECKPOINT``: re-test a saved model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ffcore.choices import PRECISION_NAMES, SPARSITY_KINDS
from ffcore.cli.completion import complete_component
from ffcore.cli.data_options import checkpoint_data_options
from ffcore.cli.json_output import json_line
from ffcore.components import normalize_name

if TYPE_CHECKING:  # imported where used, so that ff --help does not import torch
    import torch
    from torch import Tensor, nn

    from ffcore.interfaces import DataSplits, Probe
    from ffcore.metrics import ClassReport


@dataclass(frozen=True)
class PerClassReport:
    """The test split's confusion matrix, per-class numbers and accuracy."""

    confusion: Tensor
    classes: list[ClassReport]
    accuracy: float


def per_class_report(
    model: nn.Module,
    probe: Probe,
    data: DataSplits,
    meta: Mapping[str, Any],
    device: torch.device,
    precision: str,
) -> PerClassReport:
    """Predict the test split once (as ``evaluate`` does) and count per class."""
    from ffcore.inference import class_names
    from ffcore.metrics import accuracy as accuracy_of
    from ffcore.metrics import confusion_matrix, per_class, predict_split

    predicted = predict_split(model, probe, data.test.to(device), precision=precision)
    names = data.class_names if len(data.class_names) == data.num_classes else class_names(meta)
    confusion = confusion_matrix(data.test.y, predicted, data.num_classes)
    return PerClassReport(confusion, per_class(confusion, list(names)), accuracy_of(confusion))


def print_stats(model: nn.Module, kinds: Sequence[str], as_json: bool) -> None:
    """Weight statistics and sparsity of every parameter, as a table or JSON."""
    from ffcore.analysis import weight_sparsity, weight_stats

    table = weight_stats(model)
    for kind in kinds:
        for name, value in weight_sparsity(model, kind).items():
            table[name][f"sparsity_{kind}"] = value
    if as_json:
        click.echo(json_line(table, indent=2))
        return
    columns = ["min", "max", "mean", "std", "norm", *(f"sparsity_{k}" for k in kinds)]
    width = max(len(name) for name in table)
    sized = [(c, max(10, len(c))) for c in columns]
    click.echo(f"{'parameter':<{width}}  " + "  ".join(f"{c:>{n}}" for c, n in sized))
    for name, values in table.items():
        cells = [f"{values[c]:>{n}.4g}" if c in values else f"{'-':>{n}}" for c, n in sized]
        click.echo(f"{name:<{width}}  " + "  ".join(cells))


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@checkpoint_data_options("test on")
@click.option(
    "--probe",
    shell_complete=complete_component("probe"),
    help="Probe name (default: the one it was trained with).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, mps.")
@click.option(
    "--precision",
    type=click.Choice(list(PRECISION_NAMES)),
    help="fp32 or bf16 (mixed precision). [default: the precision it was trained at]",
)
@click.option(
    "--stats",
    is_flag=True,
    help="Print weight statistics and sparsity per layer instead of testing (needs no data).",
)
@click.option(
    "--sparsity",
    "sparsity_kinds",
    multiple=True,
    type=click.Choice(SPARSITY_KINDS),
    help="Sparsity measure(s) for --stats (repeatable). [default: all]",
)
@click.option(
    "--per-class",
    is_flag=True,
    help="Also report each class's precision, recall (its accuracy) and F1, and the "
    "confusion matrix.",
)
@click.option(
    "--tensorboard",
    metavar="DIR",
    help="Write the labelled confusion-matrix image and per-class table to TensorBoard.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_command(
    checkpoint: str,
    dataset: str | None,
    data_root: str | None,
    download: bool | None,
    probe: str | None,
    device: str,
    precision: str | None,
    stats: bool,
    sparsity_kinds: tuple[str, ...],
    per_class: bool,
    tensorboard: str | None,
    as_json: bool,
) -> None:
    """Load CHECKPOINT safely and report its test accuracy."""
    from ffcore.checkpoint import load_checkpoint, require_components
    from ffcore.cli.main import prepare_to_compute
    from ffcore.devices import resolve_device
    from ffcore.eval_report import confusion_lines, per_class_lines, write_tensorboard
    from ffcore.precision import check_precision
    from ffcore.registry import create_probe
    from ffcore.run_data import load_saved_data
    from ffcore.training import evaluate

    prepare_to_compute()
    target = resolve_device(device)
    loaded = load_checkpoint(checkpoint, map_location=target)
    meta = loaded.meta
    if stats:
        print_stats(loaded.model, sparsity_kinds or SPARSITY_KINDS, as_json)
        return
    data = load_saved_data(
        meta, dataset=dataset, data_root=data_root, download=download, path=checkpoint
    )
    if probe is None:
        require_components(meta, ("probe",), checkpoint)
    probe_name = probe or meta.get("probe") or loaded.model.default_probe
    probe_obj = create_probe(probe_name)
    probe_obj.check(loaded.model)
    saved_config: dict[str, Any] = meta.get("config", {})
    precision = precision or check_precision(
        saved_config.get("precision", "fp32"), "precision in the checkpoint"
    )
    report: PerClassReport | None = None
    if per_class or tensorboard:
        report = per_class_report(loaded.model, probe_obj, data, meta, target, precision)
        accuracy = report.accuracy
        if tensorboard:
            write_tensorboard(tensorboard, report.confusion, report.classes, accuracy)
    else:
        accuracy = evaluate(loaded.model, probe_obj, data.test.to(target), precision=precision)
    if as_json:
        result = {
            "checkpoint": checkpoint,
            "model": meta["model"]["name"],
            "dataset": normalize_name(data.name),
            "probe": probe_name,
            "epoch": meta.get("epoch"),
            "precision": precision,
            "test_acc": accuracy,
        }
        if report is not None and per_class:
            result["per_class"] = [r.to_dict() for r in report.classes]
            result["confusion_matrix"] = report.confusion.tolist()
        click.echo(json_line(result))
        return
    click.echo(
        f"{meta['model']['name']} (epoch {meta.get('epoch')}) on {normalize_name(data.name)}: "
        f"test accuracy {100 * accuracy:.2f}%" + ("" if precision == "fp32" else f" ({precision})")
    )
    if report is not None and per_class:
        for line in [
            "",
            *per_class_lines(report.classes),
            "",
            *confusion_lines(report.confusion, [r.name for r in report.classes]),
        ]:
            click.echo(line)
    if tensorboard:
        click.echo(f"confusion matrix written to TensorBoard: tensorboard --logdir {tensorboard}")
