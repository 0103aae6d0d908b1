"""What the example scripts share: the 0.3.0-style arguments, a printer, the run itself.

Each ``examples/*_mnist.py`` script describes its network as a few settings and hands
them to :func:`run_example`, which trains through FFLib's API exactly as ``ff train``
does and writes a checkpoint that ``ff eval`` re-tests and ``ff train --resume`` continues.
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
from ffcore.progress import SilentProgress
from ffcore.runs import save_run
from ffcore.training import build_run, train


class EpochPrinter(SilentProgress):
    """A :class:`ffcore.progress.Progress` that prints one line per epoch (the others
    of its events do nothing, as :class:`~ffcore.progress.SilentProgress` has them)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.epochs = 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.started = time.perf_counter()
        self.epochs = epochs

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        line = f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  loss {metrics['loss']:.4f}"
        if "val_acc" in metrics:
            line += f"  val accuracy {100 * metrics['val_acc']:.2f}%"
        print(f"{line}  ({time.perf_counter() - self.started:.1f}s)", flush=True)


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every example takes (those of FFLib 0.3.0's examples, and more)."""
    parser = argparse.ArgumentParser(description=description)
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
    parser.add_argument("-o", "--out", help="checkpoint path (runs/<example>_<dataset>.pt)")
    return parser


def make_config(args: argparse.Namespace, model: str, **settings: Any) -> TrainConfig:
    """The run's settings: the example's own plus the common arguments.

    ``--seed-hyperparameters`` starts from the ``seed`` preset (0.3.0's layer settings,
    constant learning rate) instead of FFLib's defaults.
    """
    merged: dict[str, Any] = {
        "model": model,
        "dataset": args.dataset,
        "layers": [2000, 2000],
        "epochs": args.epochs,
        "batch_size": 128,
        "negatives": "random",
        "val_split": 0.1,
        "use": args.use,
        "seed": args.seed,
        "device": args.device,
        "download": not args.no_download,
        **settings,
    }
    if args.data_root is not None:
        merged["data_root"] = args.data_root
    if not args.seed_hyperparameters:
        return TrainConfig(**merged)
    preset = {k: v for k, v in ffcore.get_preset("seed").items() if k != "model"}
    return build_config(preset=preset, overrides=merged)


def run_example(name: str, args: argparse.Namespace, model: str, **settings: Any) -> int:
    """Train, print per-epoch progress and test accuracy, save; the process exit code."""
    try:
        config = make_config(args, model, **settings)
        print(f"loading {config.dataset}...", flush=True)
        run = build_run(config)
        data = run.data
        val = len(data.val) if data.val is not None else 0
        print(
            f"{model} {config.layers} on {run.names['dataset']}: {len(data.train)} train / "
            f"{val} val / {len(data.test)} test, device {run.device}",
            flush=True,
        )
        out = Path(args.out or f"runs/{name}_{run.names['dataset']}.pt")
        metrics = train(run, progress=EpochPrinter(), checkpoint=lambda now: save_run(now, out))
        path = save_run(run, out, metrics)
    except ffcore.FFLibError as exc:  # unknown names, missing data, bad values: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:  # Ctrl-C: the run was saved after the last batch
        print(f"stopped; continue with: ff train --resume {stop.checkpoint}", file=sys.stderr)
        return 128 + stop.signum
    parameters = sum(p.numel() for p in run.model.parameters())
    print(
        f"test accuracy: {100 * metrics['test_acc']:.2f}% "
        f"(trained {run.epoch} epochs in {metrics['train_seconds']:.1f}s, "
        f"{parameters:,} parameters)"
    )
    print(f"checkpoint: {path}  (re-test it with: ff eval {path})")
    return 0
