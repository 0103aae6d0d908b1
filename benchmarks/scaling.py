"""Training throughput on two processes against one: data parallel and the layer pipeline.

    python benchmarks/scaling.py             # FFNet 2x2000, 4x1000, 2000-500; batch 128, 512
    python benchmarks/scaling.py --quick     # fewer batches, one round
    python benchmarks/scaling.py --nets 2x2000 2000-400 --batches 512 --rounds 5

Side by side in one run on this machine: samples/s of FFNet training (random negatives,
MNIST-shaped synthetic inputs: 784 features, 10 classes) in one process at 1 and at 2
threads, and in two processes of one thread each (``ff train --nproc 2`` gives each
process its share of the cores), data parallel (``--parallel data``) and pipelined
(``--parallel layers``). The two processes are started by torch's elastic launcher and
train through FFLib's own :class:`~ffcore.distributed.DataParallel` and
:class:`~ffcore.distributed.LayerPipeline`, gloo on 127.0.0.1.
``--waiting`` adds data parallel that waits for each layer's averaged gradients before
going on (the default averages them while the next layer computes). For each two-process
run it prints the bytes each rank sends per batch and the share of its time each rank waits
(data parallel: in the gradient all-reduces; pipeline: for the stage below or the one
above), and the CPU time each process spends per batch, its own threads and torch's
communication threads together: on a busy machine, where wall-clock figures depend on
what else runs, the CPU time still says what the work costs, and "from CPU time" is the
speed-up two idle cores would give (one process's CPU time per batch over the busiest
rank's). It also prints each layer's measured CPU time per step (one thread) and, from
those and the bytes per batch, the analytic model of docs/distributed.md: the pipeline
on N layers over N nodes, and data parallel on N nodes, at 1, 10 and 100 Gbit/s.

On a shared machine the figures move a lot from minute to minute, so the measurements
alternate: each of ``--rounds`` rounds times one process and then two, and a round's
speed-ups compare its own two measurements. The tables give the median over the rounds
and the range; the machine's load is printed with them.

The nets: 2x2000 and 4x1000 (the issue's), and 2000-500, the 2-layer net whose two layers
cost about the same. A pipeline is as fast as its slowest stage, so on 2x2000, whose second
layer costs four times its first, two stages cannot pass 1.25x; on 2000-500 they can
approach 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

FEATURES, CLASSES = 784, 10
NETS = {"2x2000": [2000, 2000], "4x1000": [1000, 1000, 1000, 1000], "2000-500": [2000, 500]}
#: Per-message latency of the analytic model (TCP between nodes), seconds.
LATENCY = 50e-6
BANDWIDTHS_GBIT = (1, 10, 100)


@dataclass(frozen=True)
class Case:
    """One measurement: a net, a batch size, how many batches to time."""

    net: str
    batch: int
    batches: int
    warmup: int = 2


def parse_net(name: str) -> list[int]:
    """``2x2000`` or ``2000-400`` (widths joined by ``-``)."""
    if name in NETS:
        return NETS[name]
    if "x" in name:
        count, width = name.split("x")
        return [int(width)] * int(count)
    return [int(width) for width in name.split("-")]


def make_run(case: Case) -> Any:
    """A TrainingRun of FFNet on synthetic MNIST-shaped data (no data set to load)."""
    from ffcore.config import TrainConfig
    from ffcore.interfaces import DataSplits, FFModel, NegativeSampler, Probe, Split
    from ffcore.plugin_manager import get_plugin_manager
    from ffcore.registry import build
    from ffcore.training import TrainingRun

    get_plugin_manager().load_entry_points()
    generator = torch.Generator().manual_seed(0)
    samples = 4 * case.batch
    x = torch.rand(samples, FEATURES, generator=generator)
    y = torch.randint(0, CLASSES, (samples,), generator=generator)
    split = Split(x, y)
    data = DataSplits("synthetic", split, None, Split(x[:8], y[:8]), (FEATURES,), CLASSES, ())
    layers = parse_net(case.net)
    config = TrainConfig(layers=layers, batch_size=case.batch, device="cpu", preset="plain")
    torch.manual_seed(0)
    model = build(
        "model", "ffnet", FFModel, input_shape=(FEATURES,), num_classes=CLASSES, layers=layers
    )
    names = {"model": "ffnet", "dataset": "synthetic", "probe": "tryall", "negatives": "random"}
    return TrainingRun(
        config=config,
        model=model,
        data=data,
        negatives=build("negatives", "random", NegativeSampler),
        probe=build("probe", "tryall", Probe),
        device=torch.device("cpu"),
        names=names,
    )


def batches_of(run: Any, case: Case) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = run.data.train.x, run.data.train.y
    return [(x[i : i + case.batch], y[i : i + case.batch]) for i in range(0, len(y), case.batch)]


def time_one_process(case: Case, threads: int) -> dict[str, Any]:
    """Samples/s of one process at ``threads`` threads, and each layer's step time."""
    from ffcore.allocator import reuse_freed_memory
    from ffcore.interfaces import Batch

    reuse_freed_memory()  # as ffcore.training.train does
    torch.set_num_threads(threads)
    run = make_run(case)
    pool = batches_of(run, case)
    layer_seconds: dict[int, float] = {}
    clock = [0.0]

    class LayerClock:
        """Each layer's CPU time: with one thread, its compute time on an idle core."""

        def layer_trained(self, index: int, layer: Any, result: Any) -> None:
            now = time.process_time()
            layer_seconds[index] = layer_seconds.get(index, 0.0) + now - clock[0]
            clock[0] = now

    for i in range(case.warmup):
        run.model.train_batch(Batch(*pool[i % len(pool)]), run.negatives)
    run.model.observer = LayerClock()
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(case.batches):
        clock[0] = time.process_time()
        run.model.train_batch(Batch(*pool[i % len(pool)]), run.negatives)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    layers = [1000 * layer_seconds[i] / case.batches for i in sorted(layer_seconds)]
    return {
        "samples_per_s": case.batches * case.batch / wall,
        "cpu_ms_per_batch": 1000 * cpu / case.batches,
        "layer_ms": layers,
        "parameters": [sum(p.numel() for p in layer.parameters()) for layer in run.model.layers],
    }


#: The two-process layouts: data parallel (averaging each layer's gradients while the next
#: layer computes), data parallel waiting for each average before going on (``--waiting``),
#: and the layer pipeline.
MODES = ("data", "data-waiting", "layers")


def rank_main(cases: list[Case], modes: list[str]) -> list[dict[str, Any]]:
    """Each rank: every case data parallel, then pipelined (one thread per rank)."""
    import torch.distributed as dist

    from ffcore.allocator import reuse_freed_memory
    from ffcore.distributed import DataParallel, LayerPipeline
    from ffcore.distributed.environment import DistEnvironment, start_session
    from ffcore.interfaces import Batch

    reuse_freed_memory()  # as ffcore.training.train does
    torch.set_num_threads(1)
    env = DistEnvironment.detect()
    assert env is not None
    session = start_session(env, torch.device("cpu"))
    results = []
    try:
        for case in cases:
            for mode in modes:
                run = make_run(case)
                parallel: Any = (
                    LayerPipeline(session, run)
                    if mode == "layers"
                    else DataParallel(session, run, overlap=mode == "data")
                )
                run.parallel = parallel
                parallel.start(run)
                pool = batches_of(run, case)
                for i in range(case.warmup):
                    parallel.train_batch(Batch(*pool[i % len(pool)]), run.negatives)
                dist.barrier()
                if mode != "layers":
                    parallel.gradients.seconds_reducing = 0.0
                    parallel.gradients.bytes_reduced = 0
                else:
                    parallel.seconds_computing = 0.0
                    if parallel.outbox is not None:
                        parallel.outbox.bytes_sent = 0
                started, cpu = time.perf_counter(), time.process_time()
                for i in range(case.batches):
                    parallel.train_batch(Batch(*pool[i % len(pool)]), run.negatives)
                dist.barrier()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                if mode != "layers":
                    waiting = parallel.gradients.seconds_reducing
                    sent = parallel.gradients.bytes_reduced
                    where = "all"
                else:
                    waiting = wall - parallel.seconds_computing
                    sent = parallel.outbox.bytes_sent if parallel.outbox is not None else 0
                    where = f"layers {parallel.layers.start}-{parallel.layers.stop - 1}"
                parallel.finish()
                results.append(
                    {
                        "net": case.net,
                        "batch": case.batch,
                        "mode": mode,
                        "rank": env.rank,
                        "holds": where,
                        "samples_per_s": case.batches * case.batch / wall,
                        "cpu_ms_per_batch": 1000 * cpu / case.batches,
                        "wait_share": waiting / wall,
                        "bytes_per_batch": sent / case.batches,
                    }
                )
    finally:
        session.close()
    return results


def time_two_processes(cases: list[Case], modes: list[str]) -> dict[int, list[dict[str, Any]]]:
    """:func:`rank_main` in two processes started by torch's elastic launcher."""
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=2,
        run_id=f"scaling-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        local_addr="127.0.0.1",
        logs_specs=DefaultLogsSpecs(),
        start_method="spawn",
    )
    returned: dict[int, list[dict[str, Any]]] = elastic_launch(config, rank_main)(cases, modes)
    return returned


def pipeline_speedup(layer_s: list[float], bytes_out: list[float], gbit: float) -> float:
    """N layers on N nodes: the slowest of each stage's compute and its transfer out."""
    bandwidth = gbit * 1e9 / 8
    stages = [
        max(t, (LATENCY + b / bandwidth) if b else 0.0)
        for t, b in zip(layer_s, bytes_out, strict=True)
    ]
    return sum(layer_s) / max(stages)


def data_parallel_speedup(
    layer_s: list[float], parameters: list[int], nodes: int, gbit: float
) -> float:
    """Each layer's compute split over ``nodes``, then a ring all-reduce of its gradient
    (``2 (N-1)/N`` of its bytes, ``2 (N-1)`` latencies), one layer after the other."""
    bandwidth = gbit * 1e9 / 8
    step = 0.0
    for seconds, count in zip(layer_s, parameters, strict=True):
        ring = 2 * (nodes - 1) / nodes * 4 * count / bandwidth + 2 * (nodes - 1) * LATENCY
        step += seconds / nodes + ring
    return sum(layer_s) / step


def communication_bound_batch(seconds_per_sample: float, fixed_seconds: float) -> float:
    """The batch below which a step's fixed communication time exceeds its compute."""
    return fixed_seconds / seconds_per_sample if seconds_per_sample > 0 else float("inf")


def analytic_rows(single: dict[str, Any], case: Case) -> list[dict[str, Any]]:
    """The model's figures for ``case`` from one process's measured layer times."""
    layer_s = [ms / 1000 for ms in single["layer_ms"]]
    widths = parse_net(case.net)
    rows_per_batch = 2 * case.batch  # positives and one random negative each
    bytes_out = [4.0 * rows_per_batch * w for w in widths[:-1]] + [0.0]
    nodes = len(widths)
    rows = []
    for gbit in BANDWIDTHS_GBIT:
        bandwidth = gbit * 1e9 / 8
        # pipeline: a stage's transfer grows with the batch like its compute; what does
        # not is the latency, which a batch must out-compute on the slowest stage
        slowest = max(layer_s) / case.batch
        per_sample_transfer = max(bytes_out) / case.batch / bandwidth
        pipeline_bound = (
            float("inf")
            if per_sample_transfer >= slowest
            else communication_bound_batch(slowest - per_sample_transfer, LATENCY)
        )
        ring = sum(
            2 * (nodes - 1) / nodes * 4 * p / bandwidth + 2 * (nodes - 1) * LATENCY
            for p in single["parameters"]
        )
        per_sample = sum(layer_s) / case.batch / nodes
        rows.append(
            {
                "net": case.net,
                "batch": case.batch,
                "nodes": nodes,
                "gbit": gbit,
                "pipeline_speedup": pipeline_speedup(layer_s, bytes_out, gbit),
                "pipeline_bound_batch": pipeline_bound,
                "data_parallel_speedup": data_parallel_speedup(
                    layer_s, single["parameters"], nodes, gbit
                ),
                "data_parallel_bound_batch": communication_bound_batch(per_sample, ring),
            }
        )
    return rows


def bound_text(batch: float) -> str:
    """A communication-bound batch size for the table: ``none`` when no batch of one
    sample or more is, ``every batch`` when all are."""
    if batch == float("inf"):
        return "every batch"
    return "none" if batch < 1 else f"{batch:,.0f}"


def load() -> str:
    try:
        return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def span(values: list[float], fmt: str = ",.0f", suffix: str = "") -> str:
    """``median (min-max)`` of ``values``, or the one value."""
    if len(values) == 1:
        return f"{values[0]:{fmt}}{suffix}"
    low, high = min(values), max(values)
    return f"{median(values):{fmt}}{suffix} ({low:{fmt}}-{high:{fmt}})"


def round_row(
    case: Case, mode: str, one: dict[str, Any], two: dict[str, Any], ranks: list[dict[str, Any]]
) -> dict[str, Any]:
    """One round's figures for ``case`` in ``mode``: one process against two."""
    speed = min(r["samples_per_s"] for r in ranks)
    return {
        "one_process_1_thread": one["samples_per_s"],
        "one_process_2_threads": two["samples_per_s"],
        "two_processes": speed,
        "vs_1_thread": speed / one["samples_per_s"],
        "vs_2_threads": speed / two["samples_per_s"],
        # what two idle cores would give: the busiest rank's CPU time per batch
        "cpu_bound": one["cpu_ms_per_batch"] / max(r["cpu_ms_per_batch"] for r in ranks),
        "cpu_ms_1_thread": one["cpu_ms_per_batch"],
        "ranks": ranks,
    }


def summary_row(case: Case, mode: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of ``case`` in ``mode``: medians, each round's figures kept."""
    keys = ("one_process_1_thread", "one_process_2_threads", "two_processes")
    row: dict[str, Any] = {"net": case.net, "batch": case.batch, "mode": mode}
    row.update({key: median([r[key] for r in rounds]) for key in keys})
    for key in ("vs_1_thread", "vs_2_threads", "cpu_bound"):
        row[key] = median([r[key] for r in rounds])
        row[f"{key}_range"] = [min(r[key] for r in rounds), max(r[key] for r in rounds)]
    row["ranks"] = rounds[-1]["ranks"]
    row["rounds"] = rounds
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["2x2000", "4x1000", "2000-500"])
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--steps", type=int, default=12, help="timed batches per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of one and two processes"
    )
    parser.add_argument("--quick", action="store_true", help="4 timed batches, one round")
    parser.add_argument(
        "--waiting",
        action="store_true",
        help="also data parallel that waits for each layer's averaged gradients",
    )
    args = parser.parse_args(argv)
    steps = 4 if args.quick else args.steps
    rounds = 1 if args.quick else max(1, args.rounds)
    cases = [Case(net, batch, steps) for net in args.nets for batch in args.batches]
    modes = [mode for mode in MODES if args.waiting or mode != "data-waiting"]
    print(f"# {load()} before, {os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
    measured: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    single: dict[tuple[str, int, int], dict[str, Any]] = {}
    for number in range(rounds):
        for case in cases:
            for threads in (1, 2):
                single[(case.net, case.batch, threads)] = time_one_process(case, threads)
        ranks = time_two_processes(cases, modes)
        for case in cases:
            one, two = single[(case.net, case.batch, 1)], single[(case.net, case.batch, 2)]
            for mode in modes:
                per_rank = [
                    r
                    for rank in sorted(ranks)
                    for r in ranks[rank]
                    if (r["net"], r["batch"], r["mode"]) == (case.net, case.batch, mode)
                ]
                row = round_row(case, mode, one, two, per_rank)
                measured.setdefault((case.net, case.batch, mode), []).append(row)
        print(f"# {load()} after round {number + 1} of {rounds}", flush=True)
    rows = []
    for case in cases:
        for mode in modes:
            row = summary_row(case, mode, measured[(case.net, case.batch, mode)])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"Samples per second and speed-ups: median ({rounds} rounds) and range")
    print(
        "| net | batch | mode | 1 process, 1 thread | 1 process, 2 threads | 2 processes | "
        "vs 1 thread | vs 2 threads | bytes sent per batch (rank 0) | waiting (rank 0, rank 1) "
        "| CPU ms per batch: 1 process (1 thread); rank 0, rank 1 | from CPU time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        runs = row["rounds"]
        waits = ", ".join(
            f"{100 * median([r['ranks'][k]['wait_share'] for r in runs]):.0f}%" for k in (0, 1)
        )
        cpus = ", ".join(
            f"{median([r['ranks'][k]['cpu_ms_per_batch'] for r in runs]):.0f}" for k in (0, 1)
        )
        alone = median([r["cpu_ms_1_thread"] for r in runs])
        sent = row["ranks"][0]["bytes_per_batch"] / 2**20
        print(
            f"| {row['net']} | {row['batch']} | {row['mode']} | "
            f"{span([r['one_process_1_thread'] for r in runs])} | "
            f"{span([r['one_process_2_threads'] for r in runs])} | "
            f"{span([r['two_processes'] for r in runs])} | "
            f"{span([r['vs_1_thread'] for r in runs], '.2f', 'x')} | "
            f"{span([r['vs_2_threads'] for r in runs], '.2f', 'x')} | {sent:.1f} MiB | "
            f"{waits} | {alone:.0f}; {cpus} | {span([r['cpu_bound'] for r in runs], '.2f', 'x')} |"
        )
    print()
    print("| net | batch | layer step CPU times, 1 thread (ms) |")
    print("| --- | --- | --- |")
    for case in cases:
        times = single[(case.net, case.batch, 1)]["layer_ms"]
        print(f"| {case.net} | {case.batch} | {' / '.join(f'{t:.1f}' for t in times)} |")
    print()
    print("Analytic model (N layers on N nodes; data parallel on N nodes), from the layer times:")
    print(
        "| net | batch | Gbit/s | pipeline speedup | pipeline comm-bound below batch | "
        "data parallel speedup | data parallel comm-bound below batch |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case in cases:
        for model_row in analytic_rows(single[(case.net, case.batch, 1)], case):
            print(
                f"| {model_row['net']} | {model_row['batch']} | {model_row['gbit']} | "
                f"{model_row['pipeline_speedup']:.2f}x on {model_row['nodes']} | "
                f"{bound_text(model_row['pipeline_bound_batch'])} | "
                f"{model_row['data_parallel_speedup']:.2f}x on {model_row['nodes']} | "
                f"{bound_text(model_row['data_parallel_bound_batch'])} |"
            )
    print(f"\n# {load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
