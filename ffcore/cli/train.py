"""``ff train``: train any registered model on any registered dataset."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ffcore.cli.json_output import json_line
from ffcore.cli.setting_options import setting_option
from ffcore.config import CORE_SETTINGS, build_config, parse_value, read_config_file
from ffcore.errors import InvalidValueError, TrainingInterrupted
from ffcore.output import prepare_output, resumed_output, save_with_fallback
from ffcore.plugin_manager import get_plugin_manager
from ffcore.progress import NORMAL, QUIET, VERBOSE, ConsoleProgress, count_parameters
from ffcore.signals import StopNow

if TYPE_CHECKING:  # the training modules import torch: ff train --help needs none of it
    from ffcore.distributed.worker import Processes
    from ffcore.training import TrainingRun

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


def output_path(run: TrainingRun, resume: str | None, out_given: bool) -> Path:
    """The checkpoint's path: ``--out``, else (resuming) beside the resumed checkpoint,
    else ``runs/MODEL-DATASET.pt``."""
    default = f"{run.names['model']}-{run.names['dataset']}.pt"
    if resume and not out_given:
        return resumed_output(Path(resume), run.config.out, default)
    return Path(run.config.out or f"runs/{default}")


def checkpointer(out: Path) -> Any:
    """Saves a run to ``out`` (or, if that fails, to a fallback it reports once)."""
    reported: set[str] = set()

    def save(run: TrainingRun, metrics: dict[str, float] | None = None) -> Path:
        from ffcore.runs import save_run

        saved = save_with_fallback(lambda path: save_run(run, path, metrics), out)
        if saved.problem and saved.problem not in reported:
            reported.add(saved.problem)
            click.echo(f"warning: {saved.problem}", err=True)
        return saved.path

    return save


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
@click.option(
    "--quiet", "-q", is_flag=True, help="Print only the test accuracy and the checkpoint path."
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also print every setting with its origin, and each epoch's throughput and lr.",
)
@click.pass_context
def train_command(
    ctx: click.Context,
    /,
    config_file: str | None,
    resume: str | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **options: Any,
) -> None:
    """Train a model, report validation and test accuracy, and save a checkpoint.

    Ctrl-C (or SIGTERM) stops after the current batch and saves a checkpoint that
    `ff train --resume` continues from. With --nproc N (or under torchrun) several
    processes train together: see docs/distributed.md.
    """
    from ffcore.cli.main import ARGV_KEY, prepare_to_compute
    from ffcore.distributed.launch import launch_processes, requested_processes
    from ffcore.distributed.worker import Processes
    from ffcore.runs import resume_run
    from ffcore.training import build_run

    prepare_to_compute()
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
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    file_settings = read_config_file(config_file) if config_file else {}
    if not processes.several:
        nproc = requested_processes(overrides, file_settings, resume)
        if nproc > 1:  # the launcher runs this same command in each process
            ctx.exit(launch_processes(nproc, ctx.find_root().meta.get(ARGV_KEY, [])))
    with processes.rank_zero_first():  # rank 0 may download the data: the others wait
        if resume:
            if config_file or "preset" in overrides:
                raise InvalidValueError("--resume", resume, "no --config or --preset alongside it")
            run = resume_run(resume, overrides)
        else:
            # build_run resolves the preset under these settings, as for a TrainConfig in Python
            run = build_run(build_config(file=file_settings, overrides=overrides))
        out = output_path(run, resume, "out" in overrides)
        # before training: a run that cannot be saved does not start (rank 0 writes it)
        lock = prepare_output(out) if processes.is_main else None
    processes.attach(run)
    verbosity = None if as_json else QUIET if quiet else VERBOSE if verbose else NORMAL
    try:
        _train_and_save(ctx, run, out, resume, verbosity, started, processes)
    finally:
        if lock is not None:
            lock.release()


def _train_and_save(
    ctx: click.Context,
    run: TrainingRun,
    out: Path,
    resume: str | None,
    verbosity: int | None,
    started: float,
    processes: Processes,
) -> None:
    """Train ``run`` and save it to ``out``, holding the stop handler until it is saved.

    ``verbosity``: :data:`~ffcore.progress.QUIET`, ``NORMAL`` or ``VERBOSE``, or ``None``
    for ``--json`` (one JSON summary and nothing else). The progress display describes
    the run first (model, data, which preset its settings started from). Of several
    processes, rank 0 alone prints and writes.
    """
    from ffcore.training import train

    config, parameters = run.config, count_parameters(run.model)
    main = processes.is_main
    as_json = verbosity is None
    progress = None  # the lines below give the test accuracy, with the checkpoint
    if verbosity is not None and main:
        progress = ConsoleProgress(verbosity, out=sys.stdout, summary=False)
        layout = processes.describe(run)
        if layout and verbosity > QUIET:
            click.echo(layout)
        if resume and verbosity > QUIET:
            click.echo(f"resuming from {resume}")
    save = processes.saving(checkpointer(out))
    with processes.stop_requests() as stop:
        stop.saved(resume)
        try:
            metrics = train(run, progress=progress, checkpoint=save, stop=stop)
            with stop.interrupting():
                checkpoint = save(run, metrics)  # again, with the test accuracy
        except TrainingInterrupted as interrupted:
            name = signal.Signals(interrupted.signum).name
            if not main:
                ctx.exit(128 + interrupted.signum)
            click.echo(
                f"\n{name}: stopped in epoch {interrupted.epoch + 1} after batch "
                f"{interrupted.batch}; checkpoint written to {interrupted.checkpoint}; "
                f"continue with: ff train --resume {interrupted.checkpoint}",
                err=True,
            )
            ctx.exit(128 + interrupted.signum)
        except StopNow as now:
            name = signal.Signals(now.signum).name
            where = (
                f"the last checkpoint written is {now.checkpoint}; continue with: "
                f"ff train --resume {now.checkpoint}"
                if now.checkpoint
                else "no checkpoint was written"
            )
            if main:
                click.echo(f"\n{name}: stopped at once; {where}", err=True)
            ctx.exit(128 + now.signum)
    wall = time.perf_counter() - started
    if not main:
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
            "preset_reason": run.resolved.reason if run.resolved else None,
            "config": config.to_dict(),
            "processes": run.parallel.world_size if run.parallel else 1,
        }
        click.echo(json_line(summary))
        return
    if verbosity != QUIET:
        click.echo(kept_line(run, metrics))
    click.echo(
        f"test accuracy: {100 * metrics['test_acc']:.2f}%  "
        f"(trained {run.epoch} epochs in {metrics['train_seconds']:.1f}s, "
        f"{parameters:,} parameters)"
    )
    click.echo(f"checkpoint: {checkpoint}")


# The core settings' options, in TrainConfig's order, after --config and --resume.
train_command.params[2:2] = [setting_option(s) for s in CORE_SETTINGS.values() if s.cli]
