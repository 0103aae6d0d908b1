"""``ff train``: train any registered model on any registered dataset."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from ffcore.cli.progress import ClickProgress
from ffcore.cli.setting_options import setting_option
from ffcore.config import CORE_SETTINGS, build_config, parse_value, read_config_file
from ffcore.errors import InvalidValueError, TrainingInterrupted
from ffcore.plugin_manager import get_plugin_manager
from ffcore.recipes import PLAIN, starting_preset
from ffcore.runs import resume_run
from ffcore.training import TrainingRun, build_run, train

OPTION_TABLES = {
    "model": "model_options",
    "dataset": "dataset_options",
    "negatives": "negatives_options",
}


def parse_component_option(text: str) -> tuple[str, str, Any]:
    """``"model.layer_range='1:'"`` -> ``("model_options", "layer_range", "1:")``.

    The value is read as a TOML value (numbers, booleans, strings, arrays); anything that
    is not valid TOML is taken as a plain string.
    """
    key, sep, raw = text.partition("=")
    kind, dot, option = key.strip().partition(".")
    if not sep or not dot or kind not in OPTION_TABLES or not option:
        raise InvalidValueError(
            "--option", text, f"KIND.NAME=VALUE with KIND one of {', '.join(OPTION_TABLES)}"
        )
    return OPTION_TABLES[kind], option, parse_value(raw)


def count_parameters(model: Any) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def kept_line(run: TrainingRun, metrics: dict[str, float]) -> str:
    """Which epoch's weights were kept, and why training stopped when it stopped early."""
    kept = int(metrics["kept_epoch"])
    line = f"kept epoch {kept} of {run.epoch}"
    if run.selection.keep == "best":
        line += f" (best validation accuracy, {100 * metrics.get('val_acc', 0.0):.2f}%)"
    else:
        line += " (the last)"
    if metrics["stopped_early"]:
        line += f"; stopped early: no higher validation accuracy in {run.selection.patience} epochs"
    return line


class TrainCommand(click.Command):
    """``ff train``: its options are the declared settings, the core's and the plugins'.

    The plugins' options are added when the command parses or shows help, from the
    process-wide plugin manager that ``ff`` configured; so a disabled plugin's options
    are not there, and the core names none of them.
    """

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        plugin = [setting_option(s) for s in get_plugin_manager().settings().values() if s.cli]
        cut = next(i for i, p in enumerate(params) if p.name == "component_options")
        return [*params[:cut], *plugin, *params[cut:]]


@click.command("train", cls=TrainCommand)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    help="Continue the run saved in this checkpoint (exactly where it stopped).",
)
@click.option(
    "--option",
    "-O",
    "component_options",
    multiple=True,
    metavar="KIND.NAME=VALUE",
    help="Extra component option, e.g. -O model.layer_range='1:' (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary, nothing else.")
@click.pass_context
def train_command(
    ctx: click.Context,
    /,
    config_file: str | None,
    resume: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Train a model, report validation and test accuracy, and save a checkpoint.

    Ctrl-C (or SIGTERM) stops after the current batch and saves a checkpoint that
    `ff train --resume` continues from. With --nproc N (or under torchrun) several
    processes train together: see docs/distributed.md.
    """
    from ffcore.cli.main import ARGV_KEY
    from ffcore.distributed.launch import launch_processes, requested_processes
    from ffcore.distributed.worker import Processes

    started = time.perf_counter()
    processes = Processes.current()  # one of several: its threads, GPU and process group
    ctx.call_on_close(processes.close)
    overrides: dict[str, Any] = {
        key: value
        for key, value in options.items()
        if value is not None and key != "component_options"
    }
    for text in options["component_options"]:
        table, option, value = parse_component_option(text)
        overrides.setdefault(table, {})[option] = value
    recipe: str | None = None  # the data set recipe this run starts from, if any
    file_settings = read_config_file(config_file) if config_file else {}
    if not processes.several:
        nproc = requested_processes(overrides, file_settings, resume)
        if nproc > 1:  # the launcher runs this same command in each process
            ctx.exit(launch_processes(nproc, ctx.find_root().meta.get(ARGV_KEY, [])))
    if resume:
        if config_file or "preset" in overrides:
            raise InvalidValueError("--resume", resume, "no --config or --preset alongside it")
        with processes.rank_zero_first():
            run = resume_run(resume, overrides)
    else:
        start = starting_preset(file_settings, overrides)
        config = build_config(preset=start.settings, file=file_settings, overrides=overrides)
        recipe = start.name if start.reason == "dataset recipe" else None
        with processes.rank_zero_first():
            run = build_run(config)
    processes.attach(run)
    config = run.config
    parameters = count_parameters(run.model)
    data = run.data
    out = Path(config.out or f"runs/{run.names['model']}-{run.names['dataset']}.pt")
    layout = processes.describe(run)
    if not as_json and processes.is_main:
        bf16 = config.precision != "fp32"
        val_size = len(data.val) if data.val else 0
        sizes = f"{len(data.train)} train / {val_size} val / {len(data.test)} test"
        click.echo(
            f"model {run.names['model']} ({parameters:,} parameters) on {run.names['dataset']} "
            f"({sizes}), probe {run.names['probe']}, negatives {run.names['negatives']}, "
            f"device {run.device}" + (f", precision {config.precision}" if bf16 else "")
        )
        if recipe:
            click.echo(
                f"settings: the {recipe} recipe (preset {recipe!r}); "
                f"--preset {PLAIN} for FFLib's generic defaults"
            )
        if layout:
            click.echo(layout)
        if resume:
            click.echo(f"resuming from {resume} at epoch {run.epoch + 1}, batch {run.batch}")
    try:
        metrics = train(
            run,
            progress=None if as_json or not processes.is_main else ClickProgress(),
            checkpoint=lambda current: processes.save(current, out),
        )
    except TrainingInterrupted as stop:
        name = signal.Signals(stop.signum).name
        if processes.is_main:
            click.echo(
                f"\n{name}: stopped in epoch {stop.epoch + 1} after batch {stop.batch}; "
                f"checkpoint written to {stop.checkpoint}; continue with: "
                f"ff train --resume {stop.checkpoint}",
                err=True,
            )
        ctx.exit(128 + stop.signum)
    checkpoint = processes.save(run, out, metrics)
    wall = time.perf_counter() - started
    if not processes.is_main:
        return
    if as_json:
        summary = {
            "model": run.names["model"],
            "dataset": run.names["dataset"],
            "parameters": parameters,
            "val_acc": metrics.get("val_acc"),
            "test_acc": metrics["test_acc"],
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": wall,
            "skipped_batches": int(metrics["skipped_batches"]),
            "keep": run.selection.keep,
            "kept_epoch": int(metrics["kept_epoch"]),
            "stopped_early": bool(metrics["stopped_early"]),
            "epochs": run.history,
            "checkpoint": str(checkpoint),
            "config": config.to_dict(),
            "processes": run.parallel.world_size if run.parallel else 1,
        }
        click.echo(json.dumps(summary))
        return
    click.echo(kept_line(run, metrics))
    click.echo(
        f"test accuracy: {100 * metrics['test_acc']:.2f}%  "
        f"(trained {run.epoch} epochs in {metrics['train_seconds']:.1f}s, "
        f"{parameters:,} parameters)"
    )
    click.echo(f"checkpoint: {checkpoint}")


# The core settings' options, in TrainConfig's order, after --config and --resume.
train_command.params[2:2] = [setting_option(s) for s in CORE_SETTINGS.values() if s.cli]
