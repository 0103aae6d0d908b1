"""Starting real processes for the distributed tests: ranks on 127.0.0.1, with timeouts.

Every process gets one thread (``OMP_NUM_THREADS=1``), as the one-process references in
the test process have (``tests/conftest.py``): equal kernels, so that a pipelined run can
equal its reference bit for bit. A process that hangs fails its test at the timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a multi-process test may take before it counts as hung (the machines CI runs
#: on are slow to start torch in several processes at once).
TIMEOUT = 300


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(extra_paths: tuple[Path, ...] = ()) -> dict[str, str]:
    """The environment of a process started by a test: this checkout first on the path,
    one thread, no launcher variables of the test process's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    paths = [*map(str, extra_paths), str(ROOT), str(ROOT / "plugins")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OMP_NUM_THREADS"] = "1"
    return env


@dataclass
class Finished:
    """What a process printed, and how it ended."""

    returncode: int
    output: str


def run_ranks(
    args: list[str], nproc: int = 2, *, timeout: float = TIMEOUT, env: dict[str, str] | None = None
) -> list[Finished]:
    """Run ``python ARGS`` as ranks ``0..nproc-1`` of one process group (the variables a
    launcher sets, no launcher); what each printed, rank by rank."""
    port = free_port()
    processes = []
    for rank in range(nproc):
        rank_env = dict(env or environment())
        rank_env.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            WORLD_SIZE=str(nproc),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(nproc),
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=rank_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    finished = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=timeout)
            finished.append(Finished(process.returncode, output))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return finished


def ff(args: list[str], *, timeout: float = TIMEOUT, env: dict[str, str] | None = None) -> Finished:
    """``ff ARGS`` in a fresh process (``python -m ffcore.cli``)."""
    result = subprocess.run(
        [sys.executable, "-m", "ffcore.cli", *args],
        cwd=ROOT,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(result.returncode, result.stdout + result.stderr)


#: A plugin that kills its own process (SIGKILL) after batch 3 when it is rank 1: a rank
#: dying in the middle of training.
KILLER = """
import os
import signal

import ffcore


@ffcore.hookimpl
def fflib_batch_end(run, epoch, batch, loss):
    if os.environ.get("RANK") == "1" and run.step >= 3:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def killer_plugin(root: Path) -> Path:
    """Install :data:`KILLER` as a plugin distribution under ``root`` (put ``root`` on
    ``PYTHONPATH`` of the processes that should load it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "fflib_killer.py").write_text(textwrap.dedent(KILLER), encoding="utf-8")
    info = root / "fflib_killer-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fflib-killer\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[fflib]\nkiller = fflib_killer\n", encoding="utf-8")
    return root
