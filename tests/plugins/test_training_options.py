"""The learning-quality options each do what they claim, and each still learns."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import ffcore
from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.schedules import lr_factor
from ffcore.training import build_run, train
from ffplugins.dense import FFDense
from ffplugins.ffnet import FFNet


def test_peer_norm_penalty_is_zero_for_equal_activity_and_positive_otherwise() -> None:
    layer = FFDense(4, 3, peer_norm=0.5, peer_momentum=0.0)
    equal = torch.full((6, 3), 2.0)
    penalty = layer.extra_loss(equal, num_pos=3)
    assert penalty is not None and float(penalty) == 0.0
    unequal = torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]] * 2)
    penalty = layer.extra_loss(unequal, num_pos=3)
    # unit means over the 3 positive rows: [4/3, 0, 0]; their mean 4/9
    means = torch.tensor([4 / 3, 0.0, 0.0])
    expected = 0.5 * float((means - means.mean()).square().mean())
    assert penalty is not None and float(penalty) == pytest.approx(expected)
    assert FFDense(4, 3).extra_loss(unequal, num_pos=3) is None  # off by default


def test_peer_norm_running_mean_uses_momentum() -> None:
    layer = FFDense(4, 2, peer_norm=1.0, peer_momentum=0.75)
    layer.extra_loss(torch.tensor([[4.0, 0.0], [9.0, 9.0]]), num_pos=1)
    torch.testing.assert_close(layer.peer_mean, torch.tensor([1.0, 0.0]))  # 0.25 * [4, 0]
    layer.extra_loss(torch.tensor([[0.0, 8.0], [9.0, 9.0]]), num_pos=1)
    torch.testing.assert_close(layer.peer_mean, torch.tensor([0.75, 2.0]))
    assert "peer_mean" in layer.state_dict()
    assert "peer_mean" not in FFDense(4, 2).state_dict()
    with pytest.raises(InvalidValueError, match="peer_norm"):
        FFDense(4, 2, peer_norm=-1.0)
    with pytest.raises(InvalidValueError, match="peer_momentum"):
        FFDense(4, 2, peer_momentum=1.0)


def test_cooldown_schedule_breakpoints() -> None:
    factors = [lr_factor("linear-cooldown", epoch, 8) for epoch in range(8)]
    assert factors[:4] == [1.0] * 4  # full rate for the first half
    assert factors[4] == pytest.approx(4 / 5) and factors[7] == pytest.approx(1 / 5)
    cosine = [lr_factor("cosine", epoch, 8) for epoch in range(8)]
    assert cosine[0] == 1.0 and cosine[4] == pytest.approx(0.5)


@pytest.mark.parametrize("scheme", ["concat", "overlay"])
def test_label_scheme_puts_the_label_where_it_says(scheme: str) -> None:
    model = ffcore.create_model(
        "ffnet", input_shape=(1, 4, 4), num_classes=3, layers=[5], label_scheme=scheme
    )
    assert isinstance(model, FFNet)
    x = torch.arange(32, dtype=torch.float32).reshape(2, 1, 4, 4) + 10
    embedded = model.embed(x, torch.tensor([2, 0]))
    flat = x.reshape(2, 16)
    if scheme == "concat":
        assert embedded.shape == (2, 19)
        torch.testing.assert_close(embedded[:, :16], flat)
        torch.testing.assert_close(embedded[:, 16:], torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    else:
        assert embedded.shape == (2, 16)
        torch.testing.assert_close(embedded[:, :3], torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
        torch.testing.assert_close(embedded[:, 3:], flat[:, 3:])
    neutral = model.neutral_input(x)
    code = neutral[:, 16:] if scheme == "concat" else neutral[:, :3]
    assert torch.equal(code, torch.zeros(2, 3))
    per_label = model.goodness_per_label(x)
    for label in range(3):
        labels = torch.full((2,), label)
        torch.testing.assert_close(per_label[:, label], model.goodness(x, labels))
    with pytest.raises(InvalidValueError, match="label_scheme"):
        ffcore.create_model("ffnet", input_shape=(4,), num_classes=3, label_scheme="sideways")


@pytest.mark.parametrize(
    "settings",
    [
        {"model_options": {"peer_norm": 0.03}},
        {"model_options": {"label_scheme": "overlay"}},
        {"model_options": {"norm": "l2"}, "threshold": 1.0},  # L2 inputs: unit-length scale
        {"goodness": "mean-squares", "threshold": 2.0},
        {"loss": "symba"},
        {"negatives": "hard"},
        {"lr_schedule": "cosine"},
        {"model_options": {"layer_range": "0:1"}},
        {"model": "ffc", "model_options": {"classifier_lr": 0.01}},
        {"model": "ffc", "negatives": "neutral", "model_options": {"schedule": "joint"}},
        {"lr_schedule": "constant", "goodness": "sum-squares"},
    ],
)
def test_each_option_learns_digits_above_chance(settings: dict[str, Any]) -> None:
    base: dict[str, Any] = {"layers": [128, 128], "epochs": 6, "lr": 0.01, "device": "cpu"}
    config = TrainConfig(**{**base, **settings})
    metrics = train(build_run(config))
    assert metrics["test_acc"] > 0.4, settings  # chance is 0.1
