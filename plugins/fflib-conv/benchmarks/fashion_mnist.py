"""Accuracy and wall time of ffcnn next to FFNet and the backprop baseline.

    python plugins/fflib-conv/benchmarks/fashion_mnist.py                    # full Fashion-MNIST
    python plugins/fflib-conv/benchmarks/fashion_mnist.py --epochs 1 --use 0.1
    python plugins/fflib-conv/benchmarks/fashion_mnist.py --dataset digits --epochs 20
    python plugins/fflib-conv/benchmarks/fashion_mnist.py --large --device cuda --epochs 20

Trains each model for the same number of epochs on the same data (Fashion-MNIST is found
in Debian's ``/usr/share/datasets/fashion-mnist`` when it is not in the data root) and
prints one JSON line per model: its settings, parameter count, epochs, wall seconds
(data, training and the final test), training seconds and test accuracy. For ffcnn the
same trained network is also tested with its classifier head (``test_acc_classifier``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import ffcore
import torch
from ffcore.config import TrainConfig
from ffcore.interfaces import Split
from ffcore.training import build_run, evaluate, train

#: The small configurations: each model's settings on top of FFLib's defaults.
SMALL: dict[str, dict[str, Any]] = {
    "ffcnn": {
        "model": "ffcnn",
        "layers": [16, 32],
        "lr": 0.01,
        "model_options": {"kernel_size": 3, "pool": 2, "dense": [100], "dense_lr": 1e-3},
    },
    "ffnet": {"model": "ffnet", "layers": [500, 500]},
    "bp": {"model": "bp", "layers": [500, 500]},
}
#: Larger configurations, for a GPU.
LARGE: dict[str, dict[str, Any]] = {
    "ffcnn": {
        "model": "ffcnn",
        "layers": [64, 128, 256],
        "lr": 0.003,
        "model_options": {"kernel_size": 3, "pool": 2, "dense": [1000], "dense_lr": 3e-4},
    },
    "ffnet": {"model": "ffnet", "layers": [2000, 2000]},
    "bp": {"model": "bp", "layers": [2000, 2000]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--use", type=float, default=1.0, help="fraction of the data set")
    parser.add_argument("--val-split", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--large", action="store_true", help="the larger (GPU) configurations")
    parser.add_argument("--models", nargs="+", default=list(SMALL), choices=list(SMALL))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = LARGE if args.large else SMALL
    for name in args.models:
        settings = table[name]
        config = TrainConfig(
            dataset=args.dataset,
            epochs=args.epochs,
            use=args.use,
            val_split=args.val_split,
            seed=args.seed,
            device=args.device,
            **settings,
        )
        started = time.perf_counter()
        run = build_run(config)
        metrics = train(run)
        wall = time.perf_counter() - started
        row: dict[str, Any] = {
            "name": "fashion_mnist" if args.dataset == "fashion-mnist" else args.dataset,
            "model": name,
            "size": "large" if args.large else "small",
            "config": {k: v for k, v in settings.items() if k != "model"},
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "device": str(run.device),
            "threads": args.threads,
            "epochs": config.epochs,
            "wall_seconds": round(wall, 1),
            "train_seconds": round(metrics["train_seconds"], 1),
            "test_acc": round(metrics["test_acc"], 4),
        }
        if name == "ffcnn":
            test = run.data.test
            head = evaluate(run.model, ffcore.create_probe("classifier"), Split(test.x, test.y))
            row["test_acc_classifier"] = round(head, 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
