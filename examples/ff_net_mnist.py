"""FFNet on MNIST: FFLib 0.3.0's ``examples/ff_net_mnist.py``, through FFLib's API.

The same experiment as the original: two fully connected FF layers of 2000 units, the
label one-hot appended to the flattened image, random wrong-label negatives, batches of
128, 10% of the training data held out for validation, 60 epochs, TryAll prediction,
seed 42. By default it uses FFLib's current hyperparameters (RMS input normalisation,
sum-of-squares goodness with threshold = layer width, Adam 0.003, linear learning-rate
cooldown); ``--seed-hyperparameters`` uses 0.3.0's own (L2 normalisation, mean of
squares, threshold 20, Adam 0.02, constant rate), which learn much more slowly.

    python examples/ff_net_mnist.py                      # MNIST, downloaded on first use
    python examples/ff_net_mnist.py -e 10 -u 0.1         # 10 epochs on 10% of the data
    python examples/ff_net_mnist.py --dataset digits -e 2  # offline, a few seconds

The checkpoint it writes is the same kind ``ff train`` writes: ``ff eval`` re-tests it and
``ff train --resume`` continues it. Ctrl-C stops after the current batch and saves it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import ffcore
from ffcore.config import TrainConfig, build_config
from ffcore.errors import TrainingInterrupted
from ffcore.runs import save_run
from ffcore.training import build_run, train


class EpochPrinter:
    """A :class:`ffcore.training.Progress` that prints one line per epoch."""

    def __init__(self) -> None:
        self.started = 0.0
        self.epochs = 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.started = time.perf_counter()
        self.epochs = epochs

    def advance(self) -> None:
        """Called after every batch; a progress bar would move here."""

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        line = f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  loss {metrics['loss']:.4f}"
        if "val_acc" in metrics:
            line += f"  val accuracy {100 * metrics['val_acc']:.2f}%"
        print(f"{line}  ({time.perf_counter() - self.started:.1f}s)", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-e", "--epochs", type=int, default=60, help="training epochs (60)")
    parser.add_argument(
        "-u", "--use", type=float, default=1.0, help="fraction of the data to use, in (0, 1]"
    )
    parser.add_argument("--dataset", default="mnist", help="registered dataset name (mnist)")
    parser.add_argument("--data-root", help="data directory (default: $FFLIB_DATA or ~/.cache)")
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading missing data"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, default=42, help="random seed (42, as in 0.3.0)")
    parser.add_argument(
        "--seed-hyperparameters",
        action="store_true",
        help="FFLib 0.3.0's exact hyperparameters (slow to learn)",
    )
    parser.add_argument("-o", "--out", help="checkpoint path (runs/ff_net_<dataset>.pt)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the 0.3.0 example's, on FFLib's or 0.3.0's hyperparameters."""
    settings: dict[str, Any] = {
        "model": "ffnet",
        "dataset": args.dataset,
        "layers": [2000, 2000],
        "epochs": args.epochs,
        "batch_size": 128,
        "negatives": "random",
        "probe": "tryall",
        "val_split": 0.1,
        "use": args.use,
        "seed": args.seed,
        "device": args.device,
        "download": not args.no_download,
    }
    if args.data_root is not None:
        settings["data_root"] = args.data_root
    if not args.seed_hyperparameters:
        return TrainConfig(**settings)
    # The "seed" preset holds 0.3.0's layer settings; 0.3.0 kept the learning rate constant.
    settings["lr_schedule"] = "constant"
    return build_config(preset=ffcore.get_preset("seed"), overrides=settings)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = make_config(args)
        print(f"loading {config.dataset}...", flush=True)
        run = build_run(config)
        data = run.data
        print(
            f"FFNet {config.layers} on {run.names['dataset']}: {len(data.train)} train / "
            f"{len(data.val) if data.val is not None else 0} val / {len(data.test)} test, "
            f"device {run.device}",
            flush=True,
        )
        out = Path(args.out or f"runs/ff_net_{run.names['dataset']}.pt")
        metrics = train(run, progress=EpochPrinter(), checkpoint=lambda now: save_run(now, out))
        path = save_run(run, out, metrics)
    except ffcore.FFLibError as exc:  # unknown names, missing data, bad values: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:  # Ctrl-C: the run was saved after the last batch
        print(f"stopped; continue with: ff train --resume {stop.checkpoint}", file=sys.stderr)
        return 128 + stop.signum
    print(
        f"test accuracy: {100 * metrics['test_acc']:.2f}% "
        f"(trained {run.epoch} epochs in {metrics['train_seconds']:.1f}s)"
    )
    print(f"checkpoint: {path}  (re-test it with: ff eval {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
