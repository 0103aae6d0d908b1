"""What flushing denormal floats saves: training steps of a trained run, with and without.

    ff train --config examples/configs/fashion_mnist.toml --epochs 5 --out runs/f5.pt
    python benchmarks/denormals.py runs/f5.pt

Resumes the run saved in the checkpoint (weights and Adam's state after some epochs) in
two fresh processes, one with FFLib's default (denormals flushed to zero) and one with
``FFLIB_KEEP_DENORMALS=1``, alternately, and times the same training batches in each.
Prints one JSON line per process: milliseconds per batch (median of the rounds) and the
share of the optimizer state's entries that are denormal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(checkpoint: str, batches: int, rounds: int) -> dict[str, object]:
    """Time ``rounds`` passes over the same ``batches`` training batches (this process)."""
    import torch

    from ffcore.devices import denormals_flushed, flush_denormals
    from ffcore.interfaces import Batch
    from ffcore.runs import resume_run

    flush_denormals()  # as `ff` does (a no-op with FFLIB_KEEP_DENORMALS=1)

    run = resume_run(checkpoint, {"device": "cpu"})
    model, sampler = run.model, run.negatives
    size = run.config.batch_size
    x, y = run.data.train.x[: size * batches], run.data.train.y[: size * batches]
    denormal = total = 0
    for optimizer in model.optimizers():
        for state in optimizer.state.values():
            for value in state.values():
                if torch.is_tensor(value) and value.dtype == torch.float32 and value.numel() > 1:
                    # by bit pattern: with denormals flushed, comparisons read them as 0
                    bits = value.view(torch.int32)
                    exponent_zero = (bits & 0x7F800000) == 0
                    denormal += int((exponent_zero & ((bits & 0x007FFFFF) != 0)).sum())
                    total += value.numel()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(x), size):
            model.train_batch(Batch(x[start : start + size], y[start : start + size]), sampler)
        times.append((time.perf_counter() - started) / batches * 1000)
    return {
        "flushed": denormals_flushed(),
        "ms_per_batch": statistics.median(times),
        "denormal_state_share": denormal / max(total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("checkpoint")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="processes per setting")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.checkpoint, args.batches, args.rounds)))
        return
    command = [sys.executable, __file__, args.checkpoint, "--worker"]
    command += ["--batches", str(args.batches), "--rounds", str(args.rounds)]
    for _ in range(args.repeats):
        for keep in ("0", "1"):
            env = {**os.environ, "FFLIB_KEEP_DENORMALS": keep}
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            print(result.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
