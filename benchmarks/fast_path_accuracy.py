"""No learning lost to speed: the fast training path against the straightforward one.

    python benchmarks/fast_path_accuracy.py

The fast path (the default) feeds each layer the output the layer below computed in its
own training step, before that layer's update. The straightforward path (``recompute``,
FFLib 0.3.0's semantics) runs the layer below again after its update and feeds that. The
``fast-bf16`` path is the fast path in mixed precision (``precision = "bf16"``: matrix
products in bfloat16, for training and for the TryAll test). All train FFNet with the same
seed, data and epochs on ``digits`` and on a 10,000-image Fashion-MNIST subset; one JSON
line per run: test accuracy and wall time. TryAll's
shortcut (the image part of the first layer shared by all labels) is exact arithmetic
and is checked against the label-by-label path by the unit tests, not here.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ffcore.config import TrainConfig
from ffcore.devices import flush_denormals
from ffcore.training import build_run, train

#: path name -> (recompute, precision)
PATHS = {
    "fast": (False, "fp32"),
    "straightforward": (True, "fp32"),
    "fast-bf16": (False, "bf16"),
}
SETTINGS = {
    "digits": {"epochs": 30, "use": 1.0},
    "fashion-mnist": {"epochs": 3, "use": 10_000 / 60_000},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    args = parser.parse_args()
    flush_denormals()  # as `ff` does, before torch starts its worker threads
    torch.set_num_threads(args.threads)
    for dataset in args.datasets:
        for seed in args.seeds:
            for path in args.paths:
                recompute, precision = PATHS[path]
                config = TrainConfig(
                    preset="plain",  # FFNet, not the data set's recipe
                    dataset=dataset,
                    seed=seed,
                    device="cpu",
                    precision=precision,
                    model_options={"recompute": recompute},
                    **SETTINGS[dataset],  # type: ignore[arg-type]
                )
                started = time.perf_counter()
                metrics = train(build_run(config))
                print(
                    json.dumps(
                        {
                            "name": "fast-path-accuracy",
                            "config": {
                                "dataset": dataset,
                                "seed": seed,
                                "path": path,
                                **SETTINGS[dataset],
                            },
                            "test_acc": metrics["test_acc"],
                            "train_seconds": metrics["train_seconds"],
                            "wall_seconds": time.perf_counter() - started,
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
