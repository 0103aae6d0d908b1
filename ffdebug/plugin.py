"""The ffdebug plugin module (entry point ``ffdebug``).

Two hooks: ``fflib_train_start`` registers a :class:`~ffdebug.tracer.Tracer` for the run
when ``--tensorboard`` is given (and only then, so untraced runs have no per-batch hooks to
call), and ``fflib_register_commands`` adds ``ff debug``. Both import TensorBoard lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ffcore import hookimpl
from ffdebug import DEFAULT_TRACE_EVERY, TRACER_NAME

if TYPE_CHECKING:
    from ffcore.training import TrainingRun


def _drop_stale_tracer(run: TrainingRun) -> None:
    """Close the tracer of an earlier run that raised before its ``fflib_train_end``."""
    stale = run.plugins.pm.get_plugin(TRACER_NAME)
    if stale is None:
        return
    close = getattr(stale, "close", None)
    if callable(close):
        close()
    run.plugins.unregister(TRACER_NAME)


@hookimpl
def fflib_train_start(run: TrainingRun) -> None:
    """Start tracing ``run`` into ``config.tensorboard``, if it is set."""
    _drop_stale_tracer(run)
    logdir = run.config.tensorboard
    if logdir is None:
        return
    from ffdebug.tracer import Tracer

    tracer = Tracer(run, logdir, run.config.trace_every or DEFAULT_TRACE_EVERY)
    try:
        run.plugins.register(tracer, name=TRACER_NAME)
    except BaseException:
        tracer.close()
        raise


@hookimpl
def fflib_register_commands(cli: click.Group) -> None:
    """Add ``ff debug``."""
    from ffdebug.debug import debug_command

    cli.add_command(debug_command)
