"""The ffdebug plugin module (entry point ``ffdebug``).

Three hooks: ``fflib_add_options`` declares ``ff train --tensorboard DIR`` (alias
``--logdir``) and ``--trace-every N``; ``fflib_train_start`` registers a
:class:`~ffdebug.tracer.Tracer` for the run when a log directory is set (and only then, so
untraced runs have no per-batch hooks to call), in a new ``DIR/version_N`` folder when
``DIR`` already holds a run (:mod:`ffdebug.logdirs`); ``fflib_register_commands`` adds
``ff debug``. TensorBoard is imported only when something is traced.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ffcore import get_plugin_manager, hookimpl
from ffdebug import DEFAULT_TRACE_EVERY, LOGDIR, TRACE_EVERY, TRACER_NAME
from ffdebug.logdirs import fresh_logdir

if TYPE_CHECKING:
    from ffcore.settings import Options
    from ffcore.training import TrainingRun


@hookimpl
def fflib_add_options(options: Options) -> None:
    """``--tensorboard DIR`` / ``--logdir DIR`` and ``--trace-every N`` for ``ff train``."""
    options.add(
        LOGDIR,
        str,
        help="Write TensorBoard traces to this directory.",
        expected="a log directory",
        aliases=("logdir",),
        path="dir",
        resumable=True,
    )
    options.add(
        TRACE_EVERY,
        int,
        help=(
            "Trace every N batches (with --tensorboard). [default: a fifth of an epoch's "
            f"batches, at most {DEFAULT_TRACE_EVERY}]"
        ),
        expected="a positive number of batches",
        check=lambda every: every >= 1,
        resumable=True,
    )


def _drop_stale_tracer() -> None:
    """Close the tracer of an earlier run that raised before its ``fflib_train_end``."""
    manager = get_plugin_manager()
    stale = manager.get_plugin(TRACER_NAME)
    if stale is None:
        return
    close = getattr(stale, "close", None)
    if callable(close):
        close()
    manager.unregister(TRACER_NAME)


def _agreed(chosen: Path, several: bool) -> Path:
    """Rank 0's choice of folder, on every rank of a run that several processes train
    (each looks at the folder at its own moment, while the others create files in it)."""
    if not several:
        return chosen
    import torch.distributed as dist

    choice: list[object] = [str(chosen)]
    dist.broadcast_object_list(choice, src=0)
    return Path(str(choice[0]))


@hookimpl
def fflib_train_start(run: TrainingRun) -> None:
    """Start tracing ``run`` into its ``tensorboard`` directory, if it is set."""
    _drop_stale_tracer()
    logdir = run.config.setting(LOGDIR)
    if logdir is None:
        return
    parallel = run.parallel
    if run.step == 0:  # a new run (a resumed one carries on where its checkpoint says)
        chosen = _agreed(fresh_logdir(Path(logdir)), parallel is not None)
        if chosen != Path(logdir):
            if parallel is None or parallel.rank == 0:
                click.echo(
                    f"TensorBoard: {logdir} already holds a run's traces; this run writes to "
                    f"{chosen}",
                    err=True,
                )
            logdir = str(chosen)
            run.config.plugin_options[LOGDIR] = logdir  # saved with the run, for --resume
    if parallel is not None and parallel.replica:
        return  # a copy of another rank's layers (data parallel): that rank traces them
    from ffdebug.tracer import Tracer

    tracer = Tracer(run, logdir, run.config.setting(TRACE_EVERY))
    try:
        get_plugin_manager().register(tracer, name=TRACER_NAME)
    except BaseException:
        tracer.close()
        raise


@hookimpl
def fflib_register_commands(cli: click.Group) -> None:
    """Add ``ff debug``."""
    from ffdebug.command import debug_command

    cli.add_command(debug_command)
