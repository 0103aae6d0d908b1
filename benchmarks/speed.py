"""Speed of FFLib against FFLib 0.3.0, side by side, with the machine's matmul ceiling.

    python benchmarks/speed.py              # the full comparison and the scaling tables
    python benchmarks/speed.py --quick      # fewer repeats, no scaling tables
    python benchmarks/speed.py --precisions fp32   # leave out the mixed-precision runs

It installs FFLib 0.3.0 from PyPI into a cache folder (``pip install --no-deps --target``),
then runs every measurement in a fresh subprocess (``benchmarks/speed_worker.py``),
alternating the libraries round by round, with the same inputs, shapes and threads.
FFLib runs at each of ``--precisions``: ``fp32`` like FFLib 0.3.0, and ``bf16`` (mixed
precision, matrix products in bfloat16), compared with the bfloat16 matmul ceiling.
It prints one JSON line per measurement (name, config, median seconds, samples/s, GFLOP/s
where the FLOPs are countable, peak MiB), then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "speed_worker.py"
FEATURES, CLASSES = 784, 10
SEED_VERSION = "0.3.0"
#: Data-set sizes for the epoch-time scaling table (FFNet training, batch 128).
EPOCH_SIZES = (7_500, 15_000, 30_000, 60_000)


def forward_flops(width: int, layers: int = 2) -> float:
    """FLOPs of one FFNet forward pass for one sample (F in the issue: 11.18M at 2x2000)."""
    flops = 2.0 * (FEATURES + CLASSES) * width
    return flops + 2.0 * width * width * (layers - 1)


def install_seed(cache: Path) -> Path:
    """FFLib 0.3.0 in ``cache`` (installed once with pip --target, no dependencies)."""
    target = cache / f"fflib-{SEED_VERSION}"
    if not (target / "fflib").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"fflib=={SEED_VERSION}",
            ],
            check=True,
        )
    return target


def worker(
    impl: str,
    case: str,
    batch: int,
    width: int,
    args: argparse.Namespace,
    seed_path: Path | None,
    repeats: int | None = None,
    samples: int | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(WORKER),
        "--impl",
        impl,
        "--case",
        case,
        "--batch",
        str(batch),
        "--width",
        str(width),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--repeats",
        str(repeats or args.repeats),
        "--precision",
        precision,
    ]
    if seed_path is not None:
        command += ["--seed-path", str(seed_path)]
    if samples is not None:
        command += ["--samples", str(samples)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {case} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Case:
    name: str
    batch: int
    width: int = 2000
    samples: int = 0  # samples per timed call (defaults to batch)
    flops_per_sample: float = 0.0  # what our implementation must compute; 0: not counted
    ceiling_batch: int = 0  # batch of the matmul ceiling to compare with (0: none)


def cases(width: int) -> list[Case]:
    f = forward_flops(width)
    first = 2.0 * (FEATURES + CLASSES) * width
    tryall = first + CLASSES * (f - first)  # the image part of layer 1 is shared by labels
    return [
        Case("ffnet-train", 128, width, 128, 4 * f, 128),
        Case("ffnet-train", 512, width, 512, 4 * f, 512),
        Case("ffnet-tryall", 10_000, width, 10_000, tryall),
        Case("ffc-train", 128, width, 128),
        Case("ffc-infer", 10_000, width, 10_000),
        Case("ffrnn-train", 128, width, 128),
        Case("ffrnn-tryall", 1000, width, 1000),
    ]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def suffix(precision: str) -> str:
    """What the result keys of FFLib at ``precision`` end with: ``ours_bf16``, ``ratio_bf16``
    (nothing for fp32: ``ours``, ``ratio``)."""
    return "" if precision == "fp32" else f"_{precision}"


def contenders(precisions: list[str]) -> list[tuple[str, str, str]]:
    """The runs of each case: (key in the results, worker implementation, precision)."""
    ours = [(f"ours{suffix(p)}", "ours", p) for p in precisions]
    return [*ours, ("seed", "seed", "fp32")]


def compare(args: argparse.Namespace, seed_path: Path) -> list[dict[str, Any]]:
    rows = []
    ceilings: dict[tuple[int, str], float] = {}
    for precision in args.precisions:
        for batch in (128, 512):
            runs = [
                worker("matmul", "matmul", batch, args.width, args, None, precision=precision)
                for _ in range(args.rounds)
            ]
            seconds = statistics.median(r["median_seconds"] for r in runs)
            ceilings[batch, precision] = 4 * forward_flops(args.width) * batch / seconds / 1e9
            emit(
                {
                    "name": "matmul-ceiling",
                    "config": {"batch": batch, "width": args.width, "precision": precision},
                    "median_seconds": seconds,
                    "gflops": ceilings[batch, precision],
                }
            )
    runs_of_a_case = contenders(args.precisions)
    for case in cases(args.width):
        measured: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in runs_of_a_case}
        slow = case.name.startswith("ffrnn") or case.samples >= 1000
        repeats = 3 if slow else None
        for round_index in range(args.rounds):
            # rotate the order each round, so no library always runs first
            shift = round_index % len(runs_of_a_case)
            for key, impl, precision in runs_of_a_case[shift:] + runs_of_a_case[:shift]:
                measured[key].append(
                    worker(
                        impl,
                        case.name,
                        case.batch,
                        case.width,
                        args,
                        seed_path if impl == "seed" else None,
                        repeats,
                        precision=precision,
                    )
                )
        row: dict[str, Any] = {
            "name": case.name,
            "config": {
                "batch": case.batch,
                "width": case.width,
                "threads": args.threads,
                "device": args.device,
            },
        }
        for key, runs in measured.items():
            seconds = statistics.median(r["median_seconds"] for r in runs)
            row[f"{key}_seconds"] = seconds
            row[f"{key}_samples_per_s"] = case.samples / seconds
            row[f"{key}_peak_mib"] = max(r["peak_mib"] for r in runs)
        for precision in args.precisions:
            end = suffix(precision)
            speed = row[f"ours{end}_samples_per_s"]
            row[f"ratio{end}"] = speed / row["seed_samples_per_s"]
            # each round's own ratio (the two ran minutes apart at most): their spread
            # shows how much of a ratio is the machine's noise
            row[f"ratio{end}_rounds"] = [
                seed["median_seconds"] / ours["median_seconds"]
                for ours, seed in zip(measured[f"ours{end}"], measured["seed"], strict=True)
            ]
            if case.flops_per_sample:
                gflops = speed * case.flops_per_sample / 1e9
                row[f"gflops{end}"] = gflops
                if case.ceiling_batch:
                    ceiling = ceilings[case.ceiling_batch, precision]
                    row[f"ceiling_fraction{end}"] = gflops / ceiling
        emit(row)
        rows.append(row)
    overhead = worker("ours", "epoch-overhead", 128, args.width, args, None)
    emit(
        {
            "name": "epoch-outside-math",
            "config": {"samples": 60_000, "batch": 128},
            "outside_fraction": overhead["outside_fraction"],
            "epoch_seconds": overhead["epoch_seconds"],
        }
    )
    return rows


def scaling(args: argparse.Namespace) -> list[dict[str, Any]]:
    """FFLib's FFNet training against batch size and width, and epoch time against
    data-set size (fp32); each record is emitted as it comes and returned."""
    records: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        emit(entry)
        records.append(entry)

    for batch in (32, 64, 128, 256, 512, 1024):
        run = worker("ours", "ffnet-train", batch, args.width, args, None)
        record(
            {
                "name": "scaling-batch",
                "config": {"batch": batch, "width": args.width},
                "median_seconds": run["median_seconds"],
                "samples_per_s": batch / run["median_seconds"],
                "gflops": 4 * forward_flops(args.width) * batch / run["median_seconds"] / 1e9,
            }
        )
    for width in (500, 1000, 2000, 4000):
        run = worker("ours", "ffnet-train", 128, width, args, None, repeats=8)
        record(
            {
                "name": "scaling-width",
                "config": {"batch": 128, "width": width},
                "median_seconds": run["median_seconds"],
                "samples_per_s": 128 / run["median_seconds"],
                "gflops": 4 * forward_flops(width) * 128 / run["median_seconds"] / 1e9,
            }
        )
    for samples in EPOCH_SIZES:  # one epoch through the trainer's batching: linear in size?
        run = worker("ours", "epoch-overhead", 128, args.width, args, None, samples=samples)
        record(
            {
                "name": "scaling-epoch",
                "config": {"samples": samples, "batch": 128, "width": args.width},
                "epoch_seconds": run["epoch_seconds"],
                "seconds_per_10k": run["epoch_seconds"] / samples * 10_000,
            }
        )
    return records


def print_table(rows: list[dict[str, Any]], precisions: list[str]) -> None:
    """One table per precision of ours, each against FFLib 0.3.0 (always fp32)."""
    for precision in precisions:
        end = suffix(precision)
        key = f"ours{end}"
        print(f"\nFFLib at {precision}, FFLib 0.3.0 at fp32 (% ceil: of the {precision} ceiling)")
        print(
            f"{'case':<14}{'batch':>7}{'0.3.0 /s':>11}{'ours /s':>11}{'ratio':>7}"
            f"{'rounds':>12}{'GFLOP/s':>9}{'% ceil':>8}{'0.3.0 MiB':>11}{'ours MiB':>10}"
        )
        for row in rows:
            gflops = f"{row[f'gflops{end}']:.0f}" if f"gflops{end}" in row else "-"
            fraction = row.get(f"ceiling_fraction{end}")
            ceiling = f"{100 * fraction:.0f}" if fraction is not None else "-"
            per_round = row[f"ratio{end}_rounds"]
            spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
            print(
                f"{row['name']:<14}{row['config']['batch']:>7}{row['seed_samples_per_s']:>11.0f}"
                f"{row[f'{key}_samples_per_s']:>11.0f}{row[f'ratio{end}']:>7.2f}{spread:>12}"
                f"{gflops:>9}{ceiling:>8}{row['seed_peak_mib']:>11.0f}"
                f"{row[f'{key}_peak_mib']:>10.0f}"
            )


#: The scaling tables: record name, the column's config key, and the rows shown
#: (label, record key, format).
SCALING_TABLES = (
    (
        "scaling-batch",
        "batch",
        (("samples/s", "samples_per_s", ",.0f"), ("GFLOP/s", "gflops", ".0f")),
    ),
    (
        "scaling-width",
        "width",
        (("samples/s", "samples_per_s", ",.0f"), ("GFLOP/s", "gflops", ".0f")),
    ),
    (
        "scaling-epoch",
        "samples",
        (("epoch s", "epoch_seconds", ".2f"), ("s per 10k", "seconds_per_10k", ".2f")),
    ),
)


def print_scaling(records: list[dict[str, Any]]) -> None:
    """The scaling records as three small tables (FFLib at fp32, FFNet training)."""
    for name, column, rows in SCALING_TABLES:
        entries = [r for r in records if r["name"] == name]
        if not entries:
            continue
        print(f"\nFFLib at fp32, FFNet training, against {column}")
        print(f"{column:<11}" + "".join(f"{r['config'][column]:>9,}" for r in entries))
        for label, key, spec in rows:
            print(f"{label:<11}" + "".join(f"{format(r[key], spec):>9}" for r in entries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16"],
        default=["fp32", "bf16"],
        help="FFLib's precisions to run (FFLib 0.3.0 always runs at fp32)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, no scaling tables")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fflib" / "bench")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats = 1, 8
    seed_path = install_seed(args.cache)
    rows = compare(args, seed_path)
    scaled = [] if args.quick else scaling(args)
    print_table(rows, args.precisions)
    print_scaling(scaled)


if __name__ == "__main__":
    main()
