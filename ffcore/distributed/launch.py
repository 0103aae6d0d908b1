"""``ff train --nproc N``: start N processes on this machine with torch's elastic launcher.

The same launcher ``torchrun`` runs (``torch.distributed.launcher.api.elastic_launch``),
with a c10d rendezvous on a free port of 127.0.0.1, no restarts, and each process running
the very same ``ff`` command line (``python -m ffcore.cli ...``); a process started by a
launcher ignores ``nproc`` and joins the run instead. So nobody has to learn ``torchrun``
to use two cores or two GPUs, and what runs is exactly what ``torchrun`` would run.

Each process gets its share of the cores (``OMP_NUM_THREADS``) unless the user set it.
When a process fails, the launcher stops the others and this module says which rank
failed and how; Ctrl-C or SIGTERM on the launcher reaches every rank, which stop after
the same batch and write one checkpoint (the launcher gives them :data:`SHUTDOWN_SECONDS`
to do so).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ffcore.distributed.environment import threads_per_process

#: Seconds the launcher gives the ranks to stop and write their checkpoint after a
#: Ctrl-C or SIGTERM, before it kills them.
SHUTDOWN_SECONDS = 300


def worker_command(argv: Sequence[str]) -> list[str]:
    """What each process runs: ``python -m ffcore.cli`` with ``ff``'s arguments."""
    return ["-m", "ffcore.cli", *argv]


#: Signals a launcher sends to stop ranks: a rank ended by one of them was usually stopped
#: because another failed.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def describe_failure(rank: int, exitcode: int, pid: int) -> tuple[str, int]:
    """A line saying how rank ``rank`` ended, and the exit status the launcher returns."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return (
            f"rank {rank} (pid {pid}) was killed by {name}; the launcher stopped the other ranks",
            128 - exitcode,
        )
    stopped = exitcode - 128
    if stopped in [int(s) for s in _STOP_SIGNALS]:  # how ff train ends on a stop request
        name = signal.Signals(stopped).name
        return f"rank {rank} (pid {pid}) stopped on {name} (exit status {exitcode})", exitcode
    return f"rank {rank} (pid {pid}) exited with status {exitcode}", exitcode


def _root_cause(failures: dict[int, Any]) -> tuple[int, Any]:
    """The failure that caused the others: a rank killed by a signal no launcher sends
    (SIGKILL, SIGSEGV...), then one that exited with an error status, then one the
    launcher stopped; the earliest, then the lowest rank, among equals."""

    def order(item: tuple[int, Any]) -> tuple[int, float, int]:
        rank, failure = item
        if failure.exitcode >= 0:
            kind = 1
        else:
            kind = 2 if -failure.exitcode in [int(s) for s in _STOP_SIGNALS] else 0
        return kind, failure.timestamp, rank

    return min(failures.items(), key=order)


def launch_processes(nproc: int, argv: Sequence[str]) -> int:
    """Run ``ff`` with ``argv`` in ``nproc`` processes; their exit status (0: success)."""
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    threads_set = bool(os.environ.get("OMP_NUM_THREADS"))
    if not threads_set:  # the processes inherit it; this one does no more work
        os.environ["OMP_NUM_THREADS"] = str(threads_per_process(nproc))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"fflib-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
        local_addr="127.0.0.1",
        logs_specs=DefaultLogsSpecs(),
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    # what the launcher logs, the ranks and this module say in fewer words
    quiet = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("torch.distributed.elastic")
    ]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, entrypoint=sys.executable)(*worker_command(argv))
    except ChildFailedError as failed:
        rank, failure = _root_cause(failed.failures)
        line, status = describe_failure(rank, failure.exitcode, failure.pid)
        click.echo(f"ff train --nproc {nproc}: {line}", err=True)
        return status
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
        if not threads_set:
            del os.environ["OMP_NUM_THREADS"]
    return 0


def requested_processes(
    overrides: dict[str, Any], file_settings: dict[str, Any], resume: str | None
) -> int:
    """How many processes ``ff train`` should start: ``--nproc``, else the config file's
    ``nproc``, else (resuming) the checkpoint's; 1 when none says."""
    nproc = overrides.get("nproc", file_settings.get("nproc"))
    if nproc is None and resume is not None and Path(resume).is_file():
        from ffcore.checkpoint import read_checkpoint

        nproc = (read_checkpoint(resume)["meta"].get("config") or {}).get("nproc")
    return int(nproc) if isinstance(nproc, int) and not isinstance(nproc, bool) else 1
