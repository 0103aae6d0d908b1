"""Learning quality: test accuracy against epochs and wall time, with an ablation table.

    python benchmarks/accuracy.py                                  # full Fashion-MNIST
    python benchmarks/accuracy.py --dataset digits --epochs 30     # seconds, offline
    python benchmarks/accuracy.py --variants default symba bp      # a subset
    python benchmarks/accuracy.py --variants recipe --precision bf16   # mixed precision
    python benchmarks/accuracy.py --variants recipe --control      # with its random features

Trains FFNet with FFLib 0.3.0's settings (``seed``), with FFLib's defaults, with each
training option switched on alone (the ablation), the best recipe found
(``examples/configs/<dataset>.toml`` when it exists) and the backprop baseline of the
same widths. Prints one JSON line per run (variant, settings, epochs, wall seconds,
final test accuracy and, with ``--curve``, test accuracy and training seconds after every
epoch), then a Markdown table for the README.

``--control`` follows each FF+C run with its random-feature control: the same settings
with ``ff_epochs = 0``, so the FF layers keep their initial weights (checked, and
reported as ``ff_weights_unchanged``) while the read-out trains alone for the same total
number of epochs. What the recipe gains over its control is what the FF layers learned.
``--tryall`` also reports an FF+C model's TryAll (FF-only) test accuracy. ``--ema-decay``
sets the weight averaging of every variant alike (a baseline gets what the recipe has).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import ffcore
from ffcore import hookimpl
from ffcore.config import TrainConfig, build_config, read_config_file
from ffcore.devices import flush_denormals
from ffcore.errors import InvalidValueError
from ffcore.plugin_manager import get_plugin_manager
from ffcore.training import TrainingRun, build_run, evaluate, train

RECIPES = Path(__file__).resolve().parent.parent / "examples" / "configs"

#: Each variant: settings on top of the defaults (``None``: the seed preset).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "seed": None,
    "default": {},
    "hard-negatives": {"negatives": "hard"},
    "peer-norm": {"model_options": {"peer_norm": 0.03}},
    "l2-norm": {"model_options": {"norm": "l2"}, "threshold": 1.0},
    "constant-lr": {"lr_schedule": "constant"},
    "cosine-lr": {"lr_schedule": "cosine"},
    "mean-squares": {"goodness": "mean-squares", "threshold": 2.0},
    "symba": {"loss": "symba"},
    "label-overlay": {"model_options": {"label_scheme": "overlay"}},
    "layers-1:": {"model_options": {"layer_range": "1:"}},
    "ffc-readout": {"model": "ffc", "model_options": {"schedule": "joint"}},
    "ffc-neutral-negatives": {
        "model": "ffc",
        "negatives": "neutral",
        "model_options": {"schedule": "joint"},
    },
    "recipe": {},  # replaced by examples/configs/<dataset>.toml
    "bp": {"model": "bp", "lr": 1e-3},
}


class TestCurve:
    """A lifecycle plugin: test accuracy after every epoch, against training seconds.

    The evaluation runs in ``fflib_epoch_end``, after the epoch's time was taken, so the
    seconds are training time only (validation included, as in ``ff train``).
    """

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []

    @hookimpl
    def fflib_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        seconds = sum(entry["epoch_seconds"] for entry in run.history)
        accuracy = evaluate(run.model, run.probe, run.data.test, precision=run.config.precision)
        self.points.append({"epoch": epoch + 1, "seconds": seconds, "test_acc": accuracy})
        print(
            f"  epoch {epoch + 1}: test {100 * accuracy:.2f}% at {seconds:.0f} s", file=sys.stderr
        )


def config_for(variant: str, args: argparse.Namespace) -> TrainConfig:
    common: dict[str, Any] = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "use": args.use,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
    }
    if args.layers:
        common["layers"] = args.layers
    if args.val_split is not None:
        common["val_split"] = args.val_split
    if args.ema_decay is not None:
        common["ema_decay"] = args.ema_decay
    settings = VARIANTS[variant]
    if settings is None:
        return build_config(preset=ffcore.get_preset("seed"), overrides=common)
    if variant == "recipe":
        recipe = RECIPES / f"{args.dataset.replace('-', '_')}.toml"
        file = read_config_file(recipe) if recipe.is_file() else {}
        epochs = args.recipe_epochs or file.get("epochs", args.epochs)
        return build_config(file=file, overrides={**common, "epochs": epochs})
    # on FFLib's generic defaults (FFNet), not on the data set's recipe
    return build_config(overrides={"preset": "plain", **common, **settings})


def control_of(config: TrainConfig) -> TrainConfig:
    """The random-feature control of an FF+C run: its settings with ``ff_epochs = 0``.

    The FF layers then never step (FF+C's read-out phase runs from the first epoch) and
    the read-out trains for the run's whole ``epochs``, on the layers' initial weights.
    """
    if config.model != "ffc":
        raise InvalidValueError(
            "model", config.model, "'ffc' for --control (a read-out to train on random features)"
        )
    options = {**config.model_options, "ff_epochs": 0}
    return build_config(file=config.to_dict(), overrides={"model_options": options})


def ff_weights(run: TrainingRun) -> list[torch.Tensor]:
    """Copies of the FF layers' parameters (not the read-out's)."""
    layers = getattr(run.model, "layers", [])
    return [p.detach().clone() for layer in layers for p in layer.parameters()]


def measure(
    variant: str, config: TrainConfig, args: argparse.Namespace, control: bool = False
) -> dict[str, Any]:
    """Train ``config`` once; the JSON row for it (with the curve when asked)."""
    curve = TestCurve()
    plugins = get_plugin_manager()
    if args.curve:
        plugins.register(curve, name="accuracy-curve")
    started = time.perf_counter()
    try:
        run = build_run(config)
        before = ff_weights(run) if control else []
        metrics = train(run)
    finally:
        if args.curve:
            plugins.unregister("accuracy-curve")
    row: dict[str, Any] = {
        "name": "accuracy",
        "variant": f"{variant}-control" if control else variant,
        "config": {k: v for k, v in config.to_dict().items() if v not in (None, {}, [])},
        "seed": config.seed,
        "epochs": config.epochs,
        "wall_seconds": time.perf_counter() - started,
        "test_acc": metrics["test_acc"],
        "val_acc": metrics.get("val_acc"),
        "train_seconds": metrics["train_seconds"],
    }
    if control:
        after = ff_weights(run)
        row["ff_weights_unchanged"] = bool(before) and all(
            torch.equal(a, b) for a, b in zip(before, after, strict=True)
        )
        if not row["ff_weights_unchanged"]:
            raise RuntimeError(f"{variant}: the control's FF layers changed during training")
    if args.tryall and config.model == "ffc" and not control:
        probe = ffcore.create_probe("tryall")
        row["tryall_test_acc"] = evaluate(
            run.model, probe, run.data.test, precision=config.precision
        )
    if args.curve:
        row["curve"] = curve.points
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--recipe-epochs", type=int, help="epochs for the recipe (its own)")
    parser.add_argument("--use", type=float, default=1.0)
    parser.add_argument("--layers", type=int, nargs="+", help="widths (default: 2000 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--val-split",
        type=float,
        help="share of the training set held out for validation (default: the data "
        "set's); 0 trains on all of it and keeps the last epoch",
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        help="weight averaging for every variant, as ff train --ema-decay (default: each "
        "variant's own; 0 switches it off)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--curve", action="store_true", help="test accuracy after every epoch (slower)"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="after each FF+C variant, its random-feature control (FF layers frozen at init)",
    )
    parser.add_argument(
        "--no-recipe-run",
        dest="run_variant",
        action="store_false",
        help="with --control: only the controls, not the variants themselves",
    )
    parser.add_argument(
        "--tryall", action="store_true", help="also FF+C's TryAll (FF-only) test accuracy"
    )
    args = parser.parse_args()
    flush_denormals()  # as `ff` does, before torch starts its worker threads
    torch.set_num_threads(args.threads)
    rows = []
    for variant in args.variants:
        config = config_for(variant, args)
        runs = [False] if not args.control else [True] if not args.run_variant else [False, True]
        for control in runs:
            row = measure(variant, control_of(config) if control else config, args, control)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| variant | epochs | training time | test accuracy |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['variant']} | {row['epochs']} | {row['train_seconds']:.0f} s | "
            f"{100 * row['test_acc']:.2f}% |"
        )
    if args.curve:
        print("\n" + curve_table(rows))


def curve_table(rows: list[dict[str, Any]]) -> str:
    """Test accuracy after each epoch, one column per variant (Markdown)."""
    epochs = max(len(row["curve"]) for row in rows)
    lines = [
        "| epoch | " + " | ".join(row["variant"] for row in rows) + " |",
        "| --- |" + " --- |" * len(rows),
    ]
    for index in range(epochs):
        cells = [
            f"{100 * row['curve'][index]['test_acc']:.2f}%" if index < len(row["curve"]) else ""
            for row in rows
        ]
        lines.append(f"| {index + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
