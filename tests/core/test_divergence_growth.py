"""A finite explosion is divergence: a loss or weights that grow by orders of magnitude.

``--lr 1e6`` used to run to the end with a loss of 2e14 and exit 0; now it stops with the
divergence error. The rule must never fire on a healthy run: every built-in model, a
recipe at ten times its learning rate (its loss rises about 8x in the first epoch), the
goodness and loss variants all train through it with a wide margin.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import ffcore
from ffcore.config import build_config
from ffcore.errors import DivergenceError
from ffcore.explosion import LOSS_GROWTH_LIMIT, WEIGHT_GROWTH_LIMIT, GrowthGuard
from ffcore.recipes import starting_preset
from ffcore.training import build_run, train
from tests.core.checkpoint_surgery import assert_one_clean_error, invoke


@pytest.mark.parametrize(
    "args",
    [
        [],  # the digits recipe (ffc)
        ["--model", "bp", "--preset", "plain", "--layers", "64"],
    ],
    ids=["digits recipe", "bp"],
)
def test_lr_1e6_is_a_divergence_not_a_result(args: list[str]) -> None:
    result = invoke("train", "--lr", "1e6", "--epochs", "3", "--device", "cpu", *args)
    line = assert_one_clean_error(
        result, "Error: training diverged in epoch 1: the loss grew from", "lower the learning"
    )
    assert f"more than {LOSS_GROWTH_LIMIT:,.0f}-fold" in line and "(it is 1e+06)" in line
    assert "test accuracy" not in result.output


def test_weights_whose_norm_explodes_are_divergence() -> None:
    model = ffcore.create_model("ffnet", input_shape=(4,), num_classes=2, layers=[8])
    guard = GrowthGuard(model)
    guard.check(model, 0, loss=1.0, reference=1.0, lr="")  # nothing grew
    with torch.no_grad():
        model.layers[0].linear.weight.mul_(2 * WEIGHT_GROWTH_LIMIT)  # type: ignore[index, union-attr]
    with pytest.raises(DivergenceError, match=r"the norm of parameter 'layers\.0\.linear\.weight'"):
        guard.check(model, 4, loss=1.0, reference=1.0, lr=" (it is 0.5)")


def test_a_loss_may_rise_a_little_and_start_small() -> None:
    model = ffcore.create_model("ffnet", input_shape=(4,), num_classes=2, layers=[8])
    guard = GrowthGuard(model)
    guard.check(model, 0, loss=80.0, reference=8.0, lr="")  # 10x: FF losses do that
    guard.check(model, 0, loss=500.0, reference=1e-6, lr="")  # judged against at least 1
    guard.check(model, 0, loss=-5e3, reference=None, lr="")  # no reference yet: no rule
    with pytest.raises(DivergenceError, match="the loss grew from 8 on the first batch to 1e"):
        guard.check(model, 0, loss=1e6, reference=8.0, lr="")


HEALTHY: list[dict[str, Any]] = [
    {"lr": 0.03},  # the digits recipe (ffc) at 10x its rate
    {"preset": "seed", "layers": [64, 64]},
    {"preset": "plain", "layers": [64, 64]},
    {"preset": "plain", "model": "ffc", "layers": [64, 64]},
    {"preset": "plain", "model": "ffrnn", "layers": [32, 32]},
    {"preset": "plain", "model": "bp", "layers": [64, 64]},
    {"preset": "plain", "model": "ffcnn"},
    {"preset": "plain", "layers": [64], "goodness": "mean-squares"},
    {"preset": "plain", "layers": [64], "goodness": "neg-sum-squares"},
    {"preset": "plain", "layers": [64], "loss": "symba"},
    {"preset": "plain", "layers": [64], "negatives": "hard"},
    # the other recipes' settings, on digits and narrower
    {"preset": "fashion-mnist", "dataset": "digits", "layers": [512]},
    {"preset": "hinton-mnist", "dataset": "digits", "layers": [128, 128, 128, 128]},
    {"dataset": "xor", "preset": "plain", "layers": [16]},
]


@pytest.mark.parametrize("settings", HEALTHY, ids=[str(h) for h in HEALTHY])
def test_healthy_runs_never_trip_the_rule(settings: dict[str, Any]) -> None:
    chosen = {"epochs": 3, "device": "cpu", **settings}
    start = starting_preset({}, chosen)
    run = build_run(build_config(preset=start.settings, overrides=chosen))
    train(run)
    assert run.loss_reference is not None
    worst = max(abs(h["loss"]) for h in run.history) / max(run.loss_reference, 1.0)
    assert worst < LOSS_GROWTH_LIMIT / 100  # a margin of two orders of magnitude
