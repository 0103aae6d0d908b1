"""FFDense (alias FFLinear): shapes, detached and normalised input, local training."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer
from ffcore.precision import autocast
from ffplugins.dense import FFDense, FFLinear
from ffplugins.goodness import MeanSquares


def _separable_data(in_features: int = 32, batch: int = 64) -> tuple[Tensor, Tensor]:
    """Positives and negatives in opposite directions (normalising keeps them apart)."""
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(in_features, generator=generator)
    x_pos = torch.randn(batch, in_features, generator=generator) + 2 * direction
    x_neg = torch.randn(batch, in_features, generator=generator) - 2 * direction
    return x_pos, x_neg


def _loss_and_gap(layer: FFDense, x_pos: Tensor, x_neg: Tensor) -> tuple[float, float]:
    with torch.no_grad():
        g_pos = layer.goodness(layer(x_pos))
        g_neg = layer.goodness(layer(x_neg))
        loss = layer.loss(g_pos, g_neg)
    return loss.item(), (g_pos.mean() - g_neg.mean()).item()


def test_is_ff_layer_module_with_expected_shapes() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 48)
    assert isinstance(layer, FFLayer)
    assert isinstance(layer, torch.nn.Module)
    assert layer.weight.shape == (48, 32)
    assert layer.bias is not None and layer.bias.shape == (48,)
    h = layer(torch.randn(5, 32))
    assert h.shape == (5, 48)
    assert (h >= 0).all()  # relu by default
    assert FFDense(32, 48, bias=False).bias is None


def test_forward_matches_formula_with_l2_norm() -> None:
    torch.manual_seed(0)
    layer = FFDense(6, 4, norm="l2", activation="identity")
    x = torch.randn(3, 6)
    assert layer.bias is not None
    expected = (x / x.norm(dim=1, keepdim=True)) @ layer.weight.T + layer.bias
    torch.testing.assert_close(layer(x), expected)


def test_forward_matches_formula_with_rms_norm() -> None:
    torch.manual_seed(0)
    layer = FFDense(16, 4, norm="rms", activation="identity")
    x = torch.randn(3, 16)
    rms = x.square().mean(dim=1, keepdim=True).sqrt()
    assert layer.bias is not None
    expected = (x / rms) @ layer.weight.T + layer.bias
    torch.testing.assert_close(layer(x), expected)


def test_input_is_detached() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16)
    x = torch.randn(4, 32, requires_grad=True)
    h = layer(x)
    assert h.requires_grad  # the layer's own parameters still get gradients
    h.square().sum().backward()
    assert x.grad is None
    assert layer.weight.grad is not None


def test_train_step_does_not_touch_input_gradient() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16)
    x_pos = torch.randn(4, 32, requires_grad=True)
    x_neg = torch.randn(4, 32, requires_grad=True)
    result = layer.train_step(x_pos, x_neg)
    assert x_pos.grad is None and x_neg.grad is None
    for tensor in (result.h_pos, result.h_neg, result.g_pos, result.g_neg, result.loss):
        assert not tensor.requires_grad


@pytest.mark.parametrize("norm", ["l2", "rms"])
def test_normalisation_makes_output_scale_invariant(norm: str) -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16, norm=norm)
    x = torch.randn(4, 32)
    with torch.no_grad():
        base = layer(x)
        for factor in (1e-3, 7.5, 1e3):
            torch.testing.assert_close(layer(x * factor), base, rtol=1e-4, atol=1e-5)
        # Each row is normalised on its own: scaling one row leaves the others alone.
        scaled = x.clone()
        scaled[1] *= 50.0
        torch.testing.assert_close(layer(scaled), base, rtol=1e-4, atol=1e-5)


def test_no_normalisation_is_not_scale_invariant() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16, norm="none", activation="identity", bias=False)
    x = torch.randn(4, 32)
    with torch.no_grad():
        torch.testing.assert_close(layer(3.0 * x), 3.0 * layer(x))


def test_train_step_lowers_loss_and_separates_goodness() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 64, lr=0.01)
    x_pos, x_neg = _separable_data()
    loss_before, gap_before = _loss_and_gap(layer, x_pos, x_neg)
    losses = [layer.train_step(x_pos, x_neg).loss.item() for _ in range(40)]
    loss_after, gap_after = _loss_and_gap(layer, x_pos, x_neg)
    assert loss_after < 0.5 * loss_before
    assert losses[-1] < losses[0]
    assert gap_after > gap_before
    assert gap_after > 0
    assert layer.threshold == 64.0


def test_train_step_returns_pre_update_activations() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16, lr=0.05)
    x_pos, x_neg = _separable_data(batch=8)
    with torch.no_grad():
        h_pos, h_neg = layer(x_pos), layer(x_neg)
    weight_before = layer.weight.detach().clone()
    result = layer.train_step(x_pos, x_neg)
    torch.testing.assert_close(result.h_pos, h_pos)
    torch.testing.assert_close(result.h_neg, h_neg)
    torch.testing.assert_close(result.g_pos, h_pos.square().sum(dim=1))
    torch.testing.assert_close(result.g_neg, h_neg.square().sum(dim=1))
    assert not torch.equal(layer.weight.detach(), weight_before)


def test_train_step_with_more_negatives_than_positives() -> None:
    torch.manual_seed(0)
    layer = FFDense(32, 16)
    result = layer.train_step(torch.randn(4, 32), torch.randn(12, 32))
    assert result.h_pos.shape == (4, 16)
    assert result.h_neg.shape == (12, 16)
    assert result.g_neg.shape == (12,)
    assert torch.isfinite(result.loss)


def test_minimising_reverses_direction() -> None:
    x_pos, x_neg = _separable_data()
    torch.manual_seed(0)
    up = FFDense(32, 64, lr=0.01, maximise=True)
    torch.manual_seed(0)
    down = FFDense(32, 64, lr=0.01, maximise=False)
    _, gap_start = _loss_and_gap(down, x_pos, x_neg)
    loss_start, _ = _loss_and_gap(down, x_pos, x_neg)
    for _ in range(40):
        up.train_step(x_pos, x_neg)
        down.train_step(x_pos, x_neg)
    _, gap_up = _loss_and_gap(up, x_pos, x_neg)
    loss_down, gap_down = _loss_and_gap(down, x_pos, x_neg)
    assert gap_up > 0
    assert gap_down < 0
    assert gap_down < gap_start
    assert loss_down < loss_start
    # score() is signed so that higher always means "more positive".
    with torch.no_grad():
        assert down.score(down(x_pos)).mean() > down.score(down(x_neg)).mean()
        torch.testing.assert_close(down.score(down(x_pos)), -down.goodness(down(x_pos)))


def test_minimising_loss_is_the_loss_of_negated_goodness() -> None:
    layer = FFDense(8, 4, maximise=False, threshold=3.0)
    g_pos = torch.tensor([1.0, 5.0])
    g_neg = torch.tensor([2.0, 0.5])
    expected = layer.loss_fn(-g_pos, -g_neg, -3.0)
    torch.testing.assert_close(layer.loss(g_pos, g_neg), expected)
    # Positives below the threshold and negatives above are what a minimising layer wants.
    assert layer.loss(torch.tensor([0.0]), torch.tensor([10.0])) < layer.loss(
        torch.tensor([10.0]), torch.tensor([0.0])
    )


def test_lr_get_and_set() -> None:
    layer = FFDense(8, 4, lr=0.01)
    assert layer.lr == pytest.approx(0.01)
    layer.lr = 0.25
    assert layer.lr == pytest.approx(0.25)
    assert all(group["lr"] == 0.25 for group in layer.optimizer.param_groups)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_setting_non_positive_lr_raises(bad: float) -> None:
    layer = FFDense(8, 4, lr=0.01)
    with pytest.raises(InvalidValueError, match="lr"):
        layer.lr = bad
    assert layer.lr == pytest.approx(0.01)


def test_setting_infinite_lr_raises_like_the_constructor() -> None:
    with pytest.raises(InvalidValueError, match="lr"):
        FFDense(8, 4, lr=float("inf"))
    layer = FFDense(8, 4, lr=0.01)
    with pytest.raises(InvalidValueError, match="lr"):
        layer.lr = float("inf")
    assert layer.lr == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_constructor_rejects_non_positive_lr(bad: float) -> None:
    with pytest.raises(InvalidValueError, match="lr"):
        FFDense(8, 4, lr=bad)


@pytest.mark.parametrize(
    "shape", [(4, 31), (4, 33), (32,), (2, 4, 32)], ids=["narrow", "wide", "1d", "3d"]
)
def test_wrong_input_shape_names_expected_width(shape: tuple[int, ...]) -> None:
    layer = FFDense(32, 8)
    with pytest.raises(InvalidValueError) as info:
        layer(torch.randn(*shape))
    assert "32" in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"in_features": 0, "out_features": 4},
        {"in_features": 4, "out_features": -1},
        {"in_features": True, "out_features": 4},
        {"in_features": 4, "out_features": 4, "activation": "swishy"},
        {"in_features": 4, "out_features": 4, "norm": "l3"},
        {"in_features": 4, "out_features": 4, "optimizer": "lbfgs-ish"},
    ],
)
def test_bad_options_raise(options: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        ffcore.create_layer("ffdense", **options)


def test_threshold_defaults_and_override() -> None:
    assert FFDense(8, 24).threshold == 24.0
    assert FFDense(8, 24, goodness="mean-squares").threshold == 2.0
    assert FFDense(8, 24, goodness="neg-sum-squares").threshold == -24.0
    assert FFDense(8, 24, threshold=5).threshold == 5.0
    assert FFDense(8, 24, goodness=MeanSquares()).threshold == 2.0


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    source = FFDense(32, 16)
    source.train_step(*_separable_data(batch=8))
    state = source.state_dict()
    assert set(state) == {"linear.weight", "linear.bias"}
    torch.manual_seed(1)
    target = FFDense(32, 16)
    x = torch.randn(3, 32)
    assert not torch.allclose(target(x), source(x))
    target.load_state_dict(state)
    torch.testing.assert_close(target(x), source(x))
    # A copy, not shared storage.
    state["linear.weight"].zero_()
    assert not torch.equal(target.weight, source.weight)


def test_alias_fflinear_resolves() -> None:
    assert FFLinear is FFDense
    assert "ffdense" in ffcore.list_layers()
    for name in ("fflinear", "FFLinear", "ffdense"):
        layer = ffcore.create_layer(name, in_features=8, out_features=4)
        assert isinstance(layer, FFDense)
        assert (layer.in_features, layer.out_features) == (8, 4)
    spec = ffcore.get_component("layer", "fflinear")
    assert spec.name == "ffdense"


def test_factory_options_reach_the_layer() -> None:
    layer = ffcore.create_layer(
        "ffdense",
        in_features=8,
        out_features=4,
        activation="tanh",
        norm="l2",
        goodness="mean-squares",
        loss="symba",
        maximise=False,
        optimizer="sgd",
        lr=0.5,
    )
    assert isinstance(layer, FFDense)
    assert layer.activation_name == "tanh" and layer.norm == "l2"
    assert isinstance(layer.goodness_fn, MeanSquares)
    assert not layer.loss_fn.uses_threshold
    assert layer.maximise is False
    assert isinstance(layer.optimizer, torch.optim.SGD)
    assert layer.lr == pytest.approx(0.5)
    with pytest.raises(InvalidValueError):
        ffcore.create_layer("ffdense", in_features=8, out_features=4, widht=3)


@pytest.mark.parametrize("norm", ["l2", "rms", "none"])
def test_forward_tiled_matches_forward_on_concatenated_rows(norm: str) -> None:
    torch.manual_seed(0)
    layer = FFDense(12, 7, norm=norm)
    images = torch.randn(5, 9)
    codes = torch.randn(10, 3)  # two copies of the five images, each row its own code
    expected = layer(torch.cat((images.repeat(2, 1), codes), dim=1))
    torch.testing.assert_close(layer.forward_tiled(images, codes), expected)
    drive = layer.image_drive(images)
    assert not drive.requires_grad
    torch.testing.assert_close(drive, images @ layer.weight[:, :9].t())
    torch.testing.assert_close(layer.forward_tiled(images, codes, drive), expected)


@pytest.mark.parametrize("with_drive", [False, True])
def test_tiled_training_step_matches_the_concatenated_step(with_drive: bool) -> None:
    torch.manual_seed(0)
    tiled = FFDense(12, 7, peer_norm=0.1)
    concatenated = FFDense(12, 7, peer_norm=0.1)
    concatenated.load_state_dict(tiled.state_dict())
    images = torch.randn(6, 9)
    codes = torch.randn(12, 3)
    drive = tiled.image_drive(images) if with_drive else None
    result = tiled.update(tiled.forward_tiled(images, codes, drive), num_pos=6)
    expected = concatenated.train_joint(torch.cat((images.repeat(2, 1), codes), dim=1), 6)
    torch.testing.assert_close(result.h, expected.h)
    torch.testing.assert_close(result.loss, expected.loss)
    for after, reference in zip(tiled.parameters(), concatenated.parameters(), strict=True):
        torch.testing.assert_close(after, reference)  # same gradients, so the same step
    assert not torch.equal(tiled.weight, FFDense(12, 7).weight)


def test_tiled_and_appended_inputs_are_checked() -> None:
    layer = FFDense(12, 7)
    with pytest.raises(InvalidValueError, match="multiple of the 5 images"):
        layer.forward_tiled(torch.randn(5, 9), torch.randn(7, 3))
    with pytest.raises(InvalidValueError, match="12 features together"):
        layer.forward_tiled(torch.randn(5, 8), torch.randn(10, 3))
    with pytest.raises(InvalidValueError, match="12 features together"):
        layer.image_drive(torch.randn(5, 12))
    with pytest.raises(InvalidValueError, match="drive"):
        layer.forward_appended(torch.randn(5, 9), torch.eye(3), torch.randn(4, 7))


def test_tiled_step_under_bf16_autocast_has_fp32_gradients_close_to_fp32() -> None:
    """The tiled matmul's hand-written backward runs in the forward's bfloat16 and hands
    the optimizer a float32 gradient."""
    torch.manual_seed(0)
    layer = FFDense(40, 16)
    images, codes = torch.randn(8, 30), torch.randn(16, 10)
    torch.autograd.backward(layer.goodness(layer.forward_tiled(images, codes)).sum())
    reference = layer.weight.grad
    assert reference is not None
    layer.weight.grad = None
    with autocast("cpu", "bf16"):
        h = layer.forward_tiled(images, codes)
        torch.autograd.backward(layer.goodness(h).sum())
    grad = layer.weight.grad
    assert grad is not None and grad.dtype == torch.float32
    assert not torch.equal(grad, reference)  # the products did run in bfloat16
    torch.testing.assert_close(grad, reference, rtol=0.05, atol=0.05 * reference.abs().max())


@pytest.mark.parametrize("path", ["forward", "appended", "tiled"])
def test_bf16_products_give_fp32_activations_close_to_fp32(path: str) -> None:
    """Under autocast only the products run in bfloat16: the activations come out in
    float32 (a row's scale rounded to bfloat16 would differ from label to label)."""
    torch.manual_seed(0)
    layer = FFDense(40, 16)
    images, codes = torch.randn(6, 30), torch.eye(10)

    def run() -> Tensor:
        if path == "forward":
            out: Tensor = layer(torch.cat((images, codes[:6]), dim=1))
            return out
        if path == "appended":
            return layer.forward_appended(images, codes, layer.image_drive(images))
        return layer.forward_tiled(images, codes[:6].repeat(2, 1), layer.image_drive(images))

    with torch.no_grad():
        expected = run()
        with autocast("cpu", "bf16"):
            mixed = run()
    assert mixed.dtype == torch.float32
    assert not torch.equal(mixed, expected)  # the products did run in bfloat16
    torch.testing.assert_close(mixed, expected, rtol=0.02, atol=0.02)
