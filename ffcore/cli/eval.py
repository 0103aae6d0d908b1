"""``ff eval CHECKPOINT``: re-test a saved model."""

from __future__ import annotations

import json
from typing import Any

import click

from ffcore.checkpoint import load_checkpoint
from ffcore.cli.context import plugin_manager_for
from ffcore.registry import create_probe, load_dataset
from ffcore.training import evaluate, resolve_device


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", help="Dataset to test on (default: the one it was trained on).")
@click.option("--data-root", type=click.Path(file_okay=False), help="Data directory.")
@click.option("--download/--no-download", default=None, help="Allow downloading data.")
@click.option("--probe", help="Probe name (default: the one it was trained with).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, mps.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def eval_command(
    ctx: click.Context,
    checkpoint: str,
    dataset: str | None,
    data_root: str | None,
    download: bool | None,
    probe: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Load CHECKPOINT safely and report its test accuracy."""
    plugins = plugin_manager_for(ctx)
    target = resolve_device(device)
    loaded = load_checkpoint(checkpoint, map_location=target, plugins=plugins)
    meta = loaded.meta
    saved_dataset: dict[str, Any] = meta.get("dataset", {})
    name = dataset or saved_dataset.get("name")
    options: dict[str, Any] = dict(saved_dataset.get("options", {})) if not dataset else {}
    spec = plugins.registry("dataset").get(str(name))
    if data_root is not None:
        options["root"] = data_root
    if download is not None and spec.accepts("download"):
        options["download"] = download
    data = load_dataset(str(name), **options)
    probe_name = probe or meta.get("probe") or loaded.model.default_probe
    probe_obj = create_probe(probe_name)
    probe_obj.check(loaded.model)
    accuracy = evaluate(loaded.model, probe_obj, data.test.to(target))
    if as_json:
        result = {
            "checkpoint": checkpoint,
            "model": meta["model"]["name"],
            "dataset": spec.name,
            "probe": probe_name,
            "epoch": meta.get("epoch"),
            "test_acc": accuracy,
        }
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{meta['model']['name']} (epoch {meta.get('epoch')}) on {spec.name}: "
        f"test accuracy {100 * accuracy:.2f}%"
    )
