"""What TensorBoard tracing (``ff train --tensorboard``) costs a training run.

Trains the same FFNet on the same data with tracing off and with tracing on at ffdebug's
default interval, alternating the two (off/on, then on/off, ...) so that drift in the
machine's load hits both alike, and prints one JSON line per measurement (``name``,
``config``, ``median_seconds`` per epoch over the repeats, ``samples_per_second``):

- ``tracing_overhead/off`` and ``tracing_overhead/on``: wall seconds per epoch (and
  process CPU seconds, ``median_cpu_seconds``);
- ``tracing_overhead/tracer_hooks``: the seconds per epoch spent inside the tracer's hooks
  (wall and CPU);
- ``tracing_overhead/summary``: the overhead in percent from the median wall times
  (``overhead_percent``), the fastest runs (``min_overhead_percent``), process CPU time
  (``cpu_overhead_percent``) and the tracer's hooks (``hook_overhead_percent``, and
  ``hook_cpu_overhead_percent``: hook CPU time over untraced CPU time), and each off/on
  pair's. On a machine shared with other work, wall times swing with the load (and more
  so with several threads), which is why one thread is the default; the CPU-time figures
  move least.

::

    python benchmarks/tracing_overhead.py                       # FFNet 2x1000 on digits
    python benchmarks/tracing_overhead.py --layers 2000,2000 --repeats 3
    python benchmarks/tracing_overhead.py --dataset synthetic --epochs 2   # 784 inputs, 20k

Each timed run is a whole ``ffcore.training.train`` call (epoch-end evaluations, the
tracer's start and close and the final test included), divided by the epochs; data and
model are built before the clock starts. The default run takes about a minute on an idle
two-core machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ffcore
from ffcore.config import TrainConfig
from ffcore.data import make_splits
from ffcore.hookspecs import Register
from ffcore.interfaces import DataSplits
from ffcore.plugin_manager import get_plugin_manager
from ffcore.training import build_run, train
from ffdebug import DEFAULT_TRACE_EVERY
from ffdebug.tracer import Tracer


def synthetic(samples: int = 20000, features: int = 784, seed: int = 0) -> DataSplits:
    """Gaussian blobs, ten classes, MNIST-sized inputs (no download)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, features, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    x = centres[y] + 2.0 * torch.randn(samples, features, generator=generator)
    cut = samples * 6 // 7
    return make_splits(
        "synthetic", (x[:cut], y[:cut]), (x[cut:], y[cut:]), num_classes=10, seed=seed
    )


class _SyntheticPlugin:
    """Registers the ``synthetic`` data set for this process only."""

    def __init__(self, samples: int) -> None:
        self.samples = samples

    @ffcore.hookimpl
    def fflib_register_datasets(self, register: Register) -> None:
        samples = self.samples

        def factory(seed: int = 0) -> DataSplits:
            """Gaussian blobs with MNIST-sized inputs (benchmark only)."""
            return synthetic(samples, seed=seed)

        register("synthetic", factory)


#: The tracer's hooks, timed by :class:`HookClock` (everything the tracer does per batch).
TRACER_HOOKS = (
    "fflib_layer_activations",
    "fflib_layer_goodness",
    "fflib_batch_end",
    "fflib_epoch_end",
    "fflib_train_end",
)


class HookClock:
    """Wall and process CPU seconds spent inside the tracer's hooks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._originals: dict[str, Callable[..., None]] = {}

    def __enter__(self) -> HookClock:
        for name in TRACER_HOOKS:
            original = getattr(Tracer, name)
            self._originals[name] = original

            @functools.wraps(original)
            def timed(*args: Any, _original: Callable[..., None] = original, **kwargs: Any) -> None:
                started, cpu_started = time.perf_counter(), time.process_time()
                try:
                    _original(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - started
                    self.cpu_seconds += time.process_time() - cpu_started

            setattr(Tracer, name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._originals.items():
            setattr(Tracer, name, original)


@dataclass
class Timing:
    """One timed ``train`` call."""

    wall: float
    cpu: float
    hooks: float
    hooks_cpu: float
    samples: int


def timed_run(config: TrainConfig) -> Timing:
    """Time one ``train`` call (wall and process CPU seconds, and the tracer's share)."""
    run = build_run(config)
    with HookClock() as clock:
        started, cpu_started = time.perf_counter(), time.process_time()
        train(run)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Timing(wall, cpu, clock.seconds, clock.cpu_seconds, len(run.data.train))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="1000,1000", help="FFNet widths (default 1000,1000)")
    parser.add_argument("--dataset", default="digits", help="digits (default) or synthetic")
    parser.add_argument("--samples", type=int, default=20000, help="synthetic data set size")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per timed run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting")
    parser.add_argument(
        "--trace-every",
        type=int,
        default=None,
        help=f"tracing interval (default: ffdebug's, {DEFAULT_TRACE_EVERY} batches)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: steadiest when shared)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    layers = [int(width) for width in args.layers.split(",") if width]
    if args.dataset == "synthetic":
        get_plugin_manager().register(_SyntheticPlugin(args.samples), name="bench-synthetic")
    trace_every = args.trace_every or DEFAULT_TRACE_EVERY
    config: dict[str, Any] = {
        "model": "ffnet",
        "layers": layers,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": args.device,
        "trace_every": trace_every,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
    }

    def settings(logdir: str | None) -> TrainConfig:
        return TrainConfig(
            model="ffnet",
            dataset=args.dataset,
            layers=layers,
            epochs=args.epochs,
            batch_size=args.batch_size,
            device=args.device,
            plugin_options={"tensorboard": logdir, "trace_every": trace_every if logdir else None},
        )

    timings: dict[str, list[Timing]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="ffdebug-bench-") as scratch:
        # warm-up, untimed: allocator, thread pool, the TensorBoard import
        for logdir in (None, str(Path(scratch) / "warm")):
            warm = settings(logdir)
            warm.epochs = 1
            timed_run(warm)
        for repeat in range(args.repeats):
            order = ("off", "on") if repeat % 2 == 0 else ("on", "off")
            for mode in order:
                logdir = str(Path(scratch) / f"{mode}-{repeat}") if mode == "on" else None
                timings[mode].append(timed_run(settings(logdir)))
    epochs: int = args.epochs
    samples = timings["off"][0].samples

    def median(mode: str, field: str) -> float:
        values: list[float] = [getattr(t, field) / epochs for t in timings[mode]]
        return statistics.median(values)

    def fastest(mode: str) -> float:
        walls: list[float] = [t.wall for t in timings[mode]]
        return min(walls) / epochs

    for mode in ("off", "on"):
        wall = median(mode, "wall")
        record = {
            "name": f"tracing_overhead/{mode}",
            "config": {**config, "tracing": mode == "on"},
            "median_seconds": wall,
            "samples_per_second": samples / wall,
            "median_cpu_seconds": median(mode, "cpu"),
            "min_seconds": fastest(mode),
            "runs_seconds": [t.wall / epochs for t in timings[mode]],
        }
        print(json.dumps(record), flush=True)
    hooks = median("on", "hooks")
    record = {
        "name": "tracing_overhead/tracer_hooks",
        "config": {**config, "tracing": True},
        "median_seconds": hooks,
        "samples_per_second": None,
        "median_cpu_seconds": median("on", "hooks_cpu"),
        "runs_seconds": [t.hooks / epochs for t in timings["on"]],
    }
    print(json.dumps(record), flush=True)
    off, on = median("off", "wall"), median("on", "wall")
    pairs = zip(timings["on"], timings["off"], strict=True)
    summary = {
        "name": "tracing_overhead/summary",
        "config": config,
        "median_seconds": on - off,
        "samples_per_second": samples / on,
        "overhead_percent": 100.0 * (on / off - 1.0),
        "min_overhead_percent": 100.0 * (fastest("on") / fastest("off") - 1.0),
        "cpu_overhead_percent": 100.0 * (median("on", "cpu") / median("off", "cpu") - 1.0),
        "hook_overhead_percent": 100.0 * hooks / off,
        "hook_cpu_overhead_percent": 100.0 * median("on", "hooks_cpu") / median("off", "cpu"),
        "paired_overhead_percent": [100.0 * (a.wall / b.wall - 1.0) for a, b in pairs],
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
