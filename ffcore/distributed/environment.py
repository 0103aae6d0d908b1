"""Which process this is among several, and the process group that connects them.

``torchrun`` (and ``ff train --nproc``, which starts the same elastic launcher) tells
each process who it is through environment variables: ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:meth:`DistEnvironment.detect` reads them; :func:`start_session` joins the process group:
gloo for CPU tensors, NCCL for CUDA tensors, one GPU per local rank. Every operation has a finite
timeout (:data:`TIMEOUT_ENV`, five minutes by default), so a rank that stops answering
ends the run with an error instead of a hang.

Besides the default group, a session holds a gloo group for small control messages
(stop requests, metrics, checks), kept apart so that they never queue behind the bulk
traffic of gradients or activations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from ffcore.errors import InvalidValueError

#: Seconds a collective or point-to-point operation may wait before it fails.
TIMEOUT_ENV = "FFLIB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 300.0
_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class DistEnvironment:
    """This process's place among the run's processes (from the launcher's variables)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> DistEnvironment | None:
        """The environment a launcher set up, or ``None`` for a single process (no
        ``WORLD_SIZE``, or ``WORLD_SIZE=1``)."""
        environ = os.environ if environ is None else environ
        if int(_read(environ, "WORLD_SIZE", "1")) <= 1:
            return None
        world_size = _read(environ, "WORLD_SIZE", None)
        rank = _read(environ, "RANK", None)
        local_rank = _read(environ, "LOCAL_RANK", rank)
        local_world_size = _read(environ, "LOCAL_WORLD_SIZE", world_size)
        found = cls(int(rank), int(world_size), int(local_rank), int(local_world_size))
        if not 0 <= found.rank < found.world_size:
            raise InvalidValueError("RANK", found.rank, f"0 .. WORLD_SIZE - 1 ({world_size} - 1)")
        if not 0 <= found.local_rank < found.local_world_size:
            raise InvalidValueError(
                "LOCAL_RANK",
                found.local_rank,
                f"0 .. LOCAL_WORLD_SIZE - 1 ({local_world_size} - 1)",
            )
        return found

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0: the one that prints and writes checkpoints."""
        return self.rank == 0


def _read(environ: Mapping[str, str], name: str, default: str | None) -> str:
    value = environ.get(name, default)
    if value is None:
        raise InvalidValueError(
            name,
            None,
            f"set by the launcher alongside {', '.join(v for v in _VARIABLES if v != name)}",
        )
    if not value.strip().isdigit():
        raise InvalidValueError(name, value, "a non-negative integer (set by the launcher)")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(local_world_size: int) -> int:
    """Each process's share of the machine's cores (at least one)."""
    return max(1, available_cores() // local_world_size)


def prepare_process(env: DistEnvironment) -> None:
    """What a rank sets before building its run: its share of the CPU cores, unless the
    user chose a thread count (``OMP_NUM_THREADS``), and its GPU (``LOCAL_RANK``)."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(threads_per_process(env.local_world_size))
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())


def timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The process group's timeout (:data:`TIMEOUT_ENV`, else five minutes)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise InvalidValueError(TIMEOUT_ENV, raw, "a positive number of seconds")
    return seconds


@dataclass
class Session:
    """A joined process group: this rank, the control group, and the device its run
    trains on (set once the run is built)."""

    env: DistEnvironment
    backend: str
    #: A gloo group of every rank, for small control messages on the CPU.
    control: dist.ProcessGroup
    timeout: timedelta
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _links: dict[tuple[int, int], dist.ProcessGroup] = field(default_factory=dict)
    _made: set[tuple[int, int]] = field(default_factory=set)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def link_groups(
        self, links: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], dist.ProcessGroup]:
        """A process group for each pair of ranks in ``links`` (pipeline neighbours) that
        this rank belongs to, made once. Every rank must pass the same ``links``: making a
        group takes every rank, in the same order."""
        for link in links:
            if link in self._made:
                continue
            self._made.add(link)
            group = dist.new_group(list(link), timeout=self.timeout)
            if isinstance(group, dist.ProcessGroup):  # else this rank is not in it
                self._links[link] = group
        return self._links

    def close(self) -> None:
        """Leave the process group (idempotent)."""
        if dist.is_initialized():
            dist.destroy_process_group()


def device_of(env: DistEnvironment, device: torch.device) -> torch.device:
    """``device`` with this rank's GPU made explicit (``cuda`` -> ``cuda:LOCAL_RANK``)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return device


def start_session(env: DistEnvironment, device: torch.device | None = None) -> Session:
    """Join the run's process group and make the control group. The launcher's
    ``MASTER_ADDR`` and ``MASTER_PORT`` say where to meet.

    The group takes CPU tensors with gloo and, where CUDA and NCCL are there, CUDA
    tensors with NCCL, so it can start before the run (and its device) is built.
    """
    timeout = timedelta(seconds=timeout_seconds())
    nccl = torch.cuda.is_available() and dist.is_nccl_available()
    backend = "cpu:gloo,cuda:nccl" if nccl else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=env.rank, world_size=env.world_size, timeout=timeout
        )
    control = dist.new_group(backend="gloo", timeout=timeout)
    assert isinstance(control, dist.ProcessGroup)  # every rank is in it
    session = Session(env=env, backend=backend, control=control, timeout=timeout)
    if device is not None:
        session.device = device_of(env, device)
    return session
