"""``ff train --preset NAME`` settings."""

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


@hookimpl
def fflib_register_presets(register: Register) -> None:
    register("seed", seed)
