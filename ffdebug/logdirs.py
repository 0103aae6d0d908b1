"""Where a traced run writes: a reused ``--tensorboard DIR`` gets a new ``version_N`` folder.

Two runs' events in one folder would draw as one run in TensorBoard, their curves laid over
each other at the same steps. So, as PyTorch Lightning does, a new run traced into a folder
that already holds traces writes to the next free ``DIR/version_N`` (``N`` from 1: the
first run is ``DIR`` itself); TensorBoard then lists ``DIR`` and ``DIR/version_1``... side
by side. A resumed run carries on in the folder its checkpoint recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The files TensorBoard reads: a folder holding one holds a run's traces.
EVENT_FILES = "events.out.tfevents.*"
_VERSION = re.compile(r"^version_(\d+)$")


def holds_traces(directory: Path) -> bool:
    """Whether ``directory`` already holds a run's traces (event files or version folders)."""
    if not directory.is_dir():
        return False
    if any(directory.glob(EVENT_FILES)):
        return True
    return any(_VERSION.match(child.name) and child.is_dir() for child in directory.iterdir())


def fresh_logdir(directory: Path) -> Path:
    """``directory`` if it holds no traces yet, else its next free ``version_N`` folder."""
    if not holds_traces(directory):
        return directory
    taken = [int(m.group(1)) for c in directory.iterdir() if (m := _VERSION.match(c.name))]
    return directory / f"version_{max(taken, default=0) + 1}"
