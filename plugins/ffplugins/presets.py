"""``ff train --preset NAME`` settings, and the data sets' recipes.

A preset named like a data set is that data set's recipe: ``ff train --dataset NAME``
starts from it unless another preset is named (see ``ffcore.recipes``). The recipes here
are the settings of ``examples/configs/*.toml`` (a test keeps them identical), where the
accuracy each reached is written down.
"""

from __future__ import annotations

from typing import Any

from ffcore import hookimpl
from ffcore.hookspecs import Register


def seed() -> dict[str, Any]:
    """FFLib 0.3.0's hyperparameters: L2 norm, mean-of-squares, threshold 20, Adam 0.02."""
    return {
        "model": "ffnet",
        "layers": [2000, 2000],
        "batch_size": 128,
        "lr": 0.02,
        "lr_schedule": "constant",
        "threshold": 20.0,
        "goodness": "mean-squares",
        "loss": "softplus-threshold",
        "negatives": "random",
        "model_options": {"norm": "l2"},
    }


def plain() -> dict[str, Any]:
    """FFLib's generic defaults for every data set (no data set recipe)."""
    return {}


def digits() -> dict[str, Any]:
    """digits recipe: FF+C with SymBa, 2x500, 30 joint and 30 read-out epochs (about 97.5%)."""
    return {
        "model": "ffc",
        "dataset": "digits",
        "layers": [500, 500],
        "epochs": 60,
        "loss": "symba",
        "negatives": "random",
        "model_options": {"schedule": "joint", "ff_epochs": 30, "classifier_lr": 0.003},
    }


def fashion_mnist() -> dict[str, Any]:
    """Fashion-MNIST recipe: FF+C with one 16000-unit FF layer, 10 joint epochs with hard
    negatives, 20 read-out epochs."""
    return {
        "model": "ffc",
        "dataset": "fashion-mnist",
        "layers": [16000],
        "epochs": 30,
        "negatives": "hard",
        "model_options": {"schedule": "joint", "ff_epochs": 10, "readout_lr": 1e-4},
    }


def hinton_mnist() -> dict[str, Any]:
    """Hinton (2022)'s supervised MNIST settings: 4x2000, 60 epochs, neutral-pass negatives."""
    return {
        "model": "ffc",
        "dataset": "mnist",
        "layers": [2000, 2000, 2000, 2000],
        "epochs": 60,
        "negatives": "neutral",
        "probe": "tryall",
        "model_options": {"schedule": "joint", "layer_range": "1:"},
    }


@hookimpl
def fflib_register_presets(register: Register) -> None:
    register("seed", seed)
    register("plain", plain)
    register("digits", digits)
    register("fashion-mnist", fashion_mnist)
    register("hinton-mnist", hinton_mnist)
