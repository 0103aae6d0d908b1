"""FFRNN on MNIST: FFLib 0.3.0's ``examples/ff_rnn_mnist.py``, through FFLib's API.

The same experiment as the original: the flattened image below two recurrent FF layers of
2000 units and the label's one-hot code above them, beta 0.7, 10 frames per training
batch, goodness averaged over test frames 3 to 8, random wrong-label negatives, batches of
128, 10% of the training data held out for validation, 60 epochs, TryAll prediction, seed
42. By default it uses FFLib's current hyperparameters (RMS normalisation, sum-of-squares
goodness with threshold = layer width, Adam 0.003, linear learning-rate cooldown);
``--seed-hyperparameters`` uses 0.3.0's own (L2 normalisation, mean of squares,
threshold 20, Adam 0.02, constant rate).

Test frames are 1-based and inclusive here: ``--test-frames 3:8`` averages frames 3, 4, 5,
6, 7 and 8 after the initial bottom-up pass. (0.3.0's ``K_testlow=3, K_testhigh=8``
counted 0-based frames after ``3``, i.e. frames 5 to 8: pass ``--test-frames 5:8`` for
that.) Unlike 0.3.0, hidden states start at zero, not at random, so predictions are
deterministic.

    python examples/ff_rnn_mnist.py                        # MNIST, downloaded on first use
    python examples/ff_rnn_mnist.py -e 10 -u 0.1           # 10 epochs on 10% of the data
    python examples/ff_rnn_mnist.py --dataset digits -e 1 -u 0.5  # offline, a few seconds

The checkpoint it writes can be re-tested with ``ff eval``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import ffcore
from ffcore.checkpoint import save_checkpoint
from ffcore.config import TrainConfig, build_config
from ffcore.training import TrainingRun, build_run, dataset_kwargs, train


class EpochPrinter:
    """A :class:`ffcore.training.Progress` that prints one line per epoch."""

    def __init__(self) -> None:
        self.started = 0.0
        self.epochs = 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        """Remember when the epoch started."""
        self.started = time.perf_counter()
        self.epochs = epochs

    def advance(self) -> None:
        """Called after every batch; a progress bar would move here."""

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Print the epoch's loss and validation accuracy."""
        line = f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  loss {metrics['loss']:.4f}"
        if "val_acc" in metrics:
            line += f"  val accuracy {100 * metrics['val_acc']:.2f}%"
        print(f"{line}  ({time.perf_counter() - self.started:.1f}s)", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: 0.3.0's ``-e`` and ``-u`` plus data, device and frame options."""
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
    parser.add_argument(
        "--frames", type=int, default=10, help="frames per training batch (10, 0.3.0's K_train)"
    )
    parser.add_argument(
        "--test-frames",
        default="3:8",
        help="LOW:HIGH, the 1-based inclusive frames whose goodness predicts (3:8)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (42, as in 0.3.0)")
    parser.add_argument(
        "--seed-hyperparameters",
        action="store_true",
        help="FFLib 0.3.0's exact layer hyperparameters (slow to learn)",
    )
    parser.add_argument("-o", "--out", help="checkpoint path (runs/ff_rnn_<dataset>.pt)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the 0.3.0 example's, on FFLib's or 0.3.0's hyperparameters."""
    settings: dict[str, Any] = {
        "model": "ffrnn",
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
        "model_options": {"beta": 0.7, "frames": args.frames, "test_frames": args.test_frames},
    }
    if args.data_root is not None:
        settings["data_root"] = args.data_root
    if not args.seed_hyperparameters:
        return TrainConfig(**settings)
    # The "seed" preset holds 0.3.0's layer settings (its model is overridden to ffrnn);
    # 0.3.0 kept the learning rate constant.
    settings["lr_schedule"] = "constant"
    return build_config(preset=ffcore.get_preset("seed"), overrides=settings)


def save(run: TrainingRun, metrics: dict[str, float], path: Path) -> Path:
    """Write a checkpoint that ``ff eval`` can re-test."""
    config = run.config
    return save_checkpoint(
        path,
        run.model,
        model_name=run.names["model"],
        model_options=config.model_kwargs(),
        input_shape=run.data.input_shape,
        num_classes=run.data.num_classes,
        plugins=run.plugins,
        extra={
            "dataset": {
                "name": run.names["dataset"],
                "options": dataset_kwargs(config, run.plugins),
            },
            "probe": run.names["probe"],
            "negatives": run.names["negatives"],
            "epoch": run.epoch,
            "metrics": metrics,
            "history": run.history,
            "config": config.to_dict(),
            "class_names": list(run.data.class_names),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Train, test and save; return the process exit status."""
    args = parse_args(argv)
    try:
        config = make_config(args)
        print(f"loading {config.dataset}...", flush=True)
        run = build_run(config)
        data = run.data
        summary = run.model.extra_summary()
        print(
            f"FFRNN {config.layers} on {run.names['dataset']}: {len(data.train)} train / "
            f"{len(data.val) if data.val is not None else 0} val / {len(data.test)} test, "
            f"{summary['frames']} frames, test frames {summary['test_frames']}, "
            f"device {run.device}",
            flush=True,
        )
        metrics = train(run, progress=EpochPrinter())
        path = save(run, metrics, Path(args.out or f"runs/ff_rnn_{run.names['dataset']}.pt"))
    except ffcore.FFLibError as exc:  # unknown names, missing data, bad values: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"test accuracy: {100 * metrics['test_acc']:.2f}% "
        f"(trained {run.epoch} epochs in {metrics['train_seconds']:.1f}s)"
    )
    print(f"checkpoint: {path}  (re-test it with: ff eval {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
