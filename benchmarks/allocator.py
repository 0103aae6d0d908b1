"""What keeping freed memory saves: FFLib training steps with glibc's default ``malloc``
settings and with FFLib's (:mod:`ffcore.allocator`).

    python benchmarks/allocator.py                         # FFNet 2x2000, batch 128 and 512
    python benchmarks/allocator.py --cases ffnet-train ffc-train --batches 512 --rounds 5

Each measurement is a fresh process of ``benchmarks/speed_worker.py`` (one thread, CPU
clock: time the process runs, so another job on the machine does not count), once with
FFLib's settings and once with ``FFLIB_KEEP_MALLOC=1``, alternately for ``--rounds``
rounds. Prints one JSON line per case and a table: the median milliseconds of CPU time
per training step of each, their ratio per round (median and range), and each process's
page faults and system time per step, which is where the difference goes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def speed_benchmark() -> ModuleType:
    """``benchmarks/speed.py``, whose worker launcher this benchmark shares."""
    name = "fflib_speed_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "speed.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def measure(case: str, batch: int, width: int, repeats: int, keep: bool) -> dict[str, Any]:
    """One fresh worker process's median CPU seconds per step, with its faults."""
    os.environ["FFLIB_KEEP_MALLOC"] = "1" if keep else "0"  # the worker inherits it
    speed = speed_benchmark()
    args = argparse.Namespace(
        threads=1, device="cpu", repeats=repeats, clock="cpu", cache=speed.DEFAULT_CACHE
    )
    result: dict[str, Any] = speed.worker("ours", case, batch, width, args)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["ffnet-train"])
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases:
        for batch in args.batches:
            kept: list[dict[str, Any]] = []
            reused: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                reused.append(measure(case, batch, args.width, args.repeats, keep=False))
                kept.append(measure(case, batch, args.width, args.repeats, keep=True))
            ratios = [
                k["median_seconds"] / r["median_seconds"] for k, r in zip(kept, reused, strict=True)
            ]
            row = {
                "case": case,
                "batch": batch,
                "width": args.width,
                "glibc_ms": 1000 * statistics.median(k["median_seconds"] for k in kept),
                "fflib_ms": 1000 * statistics.median(r["median_seconds"] for r in reused),
                "speedup": statistics.median(ratios),
                "speedup_range": [min(ratios), max(ratios)],
                "glibc_faults_per_step": statistics.median(k["faults_per_call"] for k in kept),
                "fflib_faults_per_step": statistics.median(r["faults_per_call"] for r in reused),
                "glibc_system_ms": statistics.median(k["system_ms_per_call"] for k in kept),
                "fflib_system_ms": statistics.median(r["system_ms_per_call"] for r in reused),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(
        "| case | batch | CPU ms per step: glibc's settings | FFLib's | speed-up (range) | "
        "page faults per step: glibc's, FFLib's | system ms per step: glibc's, FFLib's |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        low, high = row["speedup_range"]
        print(
            f"| {row['case']} {row['width']} | {row['batch']} | {row['glibc_ms']:.1f} | "
            f"{row['fflib_ms']:.1f} | {row['speedup']:.2f}x ({low:.2f}-{high:.2f}) | "
            f"{row['glibc_faults_per_step']:,.0f}, {row['fflib_faults_per_step']:,.0f} | "
            f"{row['glibc_system_ms']:.1f}, {row['fflib_system_ms']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
