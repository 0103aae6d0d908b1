"""FFConv2d: shapes, the detached and normalised input, goodness, thresholds, options."""

from __future__ import annotations

from typing import Any

import ffcore
import pytest
import torch
from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer
from torch import Tensor

from fflib_conv import FFConv2d, PositionGoodness


def make(**options: Any) -> FFConv2d:
    torch.manual_seed(0)
    settings: dict[str, Any] = {"in_channels": 3, "out_channels": 8, "kernel_size": 3}
    settings.update(options)
    return FFConv2d(**settings)


def with_codes(x: Tensor, codes: Tensor) -> Tensor:
    """Every row of ``x`` with every code as constant planes, sample-major."""
    batch, _, height, width = x.shape
    planes = codes[:, :, None, None].expand(*codes.shape, height, width)
    return torch.cat(
        (x.repeat_interleave(codes.shape[0], dim=0), planes.repeat(batch, 1, 1, 1)), dim=1
    )


@pytest.mark.parametrize(
    ("padding", "pool", "expected"),
    [("same", 1, (10, 12)), ("same", 2, (5, 6)), ("valid", 1, (8, 10)), ("valid", 3, (2, 3))],
)
def test_output_shape(padding: str, pool: int, expected: tuple[int, int]) -> None:
    layer = make(padding=padding, pool=pool)
    h = layer(torch.randn(4, 3, 10, 12))
    assert h.shape == (4, 8, *expected)
    assert layer.output_size((10, 12)) == expected
    assert isinstance(layer, FFLayer)
    assert sorted(layer.state_dict()) == ["conv.bias", "conv.weight"]


def test_input_is_detached() -> None:
    layer = make()
    x = torch.randn(4, 3, 6, 6, requires_grad=True)
    h = layer(x)
    torch.autograd.backward(layer.goodness(h).sum())
    assert x.grad is None  # no gradient reaches the layer below
    assert layer.conv.weight.grad is not None


def test_input_is_normalised_at_every_position() -> None:
    layer = make(norm="rms", norm_over="channels")
    x = torch.randn(2, 3, 6, 6)
    scale = torch.rand(2, 1, 6, 6) * 10 + 0.1  # a different positive factor per position
    assert torch.allclose(layer(x), layer(x * scale), atol=1e-5)
    rms = layer.normalize(x).square().mean(dim=1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-5)


def test_sample_normalisation_and_no_normalisation() -> None:
    x = torch.randn(2, 3, 6, 6)
    over_sample = make(norm="l2", norm_over="sample")
    lengths = over_sample.normalize(x).flatten(1).norm(dim=1)
    assert torch.allclose(lengths, torch.ones(2), atol=1e-5)
    assert torch.allclose(over_sample(x), over_sample(3 * x), atol=1e-5)
    assert not torch.allclose(over_sample(x), over_sample(x * torch.rand(1, 1, 6, 6) + 0.1))
    plain = make(norm="none")
    assert torch.equal(plain.normalize(x), x)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_pooling_then_activating_matches_activating_then_pooling(activation: str) -> None:
    layer = make(pool=2, activation=activation)
    x = torch.randn(3, 3, 8, 8)
    pre = layer.conv(layer.normalize(x))
    expected = torch.nn.functional.max_pool2d(layer.act(pre), 2)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_goodness_is_per_position_then_reduced() -> None:
    h = torch.randn(2, 4, 3, 5).relu()
    per_position = h.square().sum(dim=1).flatten(1)  # sum of squares over channels
    mean = PositionGoodness(ffcore.create_goodness("sum-squares"), "mean")
    total = PositionGoodness(ffcore.create_goodness("sum-squares"), "sum")
    assert torch.allclose(mean(h), per_position.mean(dim=1))
    assert torch.allclose(total(h), per_position.sum(dim=1))
    means = PositionGoodness(ffcore.create_goodness("mean-squares"), "mean")
    assert torch.allclose(means(h), h.square().mean(dim=1).flatten(1).mean(dim=1))
    assert mean(h.contiguous(memory_format=torch.channels_last)).allclose(mean(h))


def test_default_thresholds_scale_with_the_units_summed() -> None:
    assert make().threshold == 8.0  # sum-squares over 8 channels, averaged over positions
    summed = make(goodness_reduce="sum", input_size=(10, 12), pool=2)
    assert summed.threshold == 8.0 * 5 * 6  # ... summed over the 5x6 output positions
    assert make(goodness="mean-squares").threshold == 2.0
    assert make(goodness="neg-sum-squares").threshold == -8.0
    assert make(threshold=3.5).threshold == 3.5
    assert make(goodness_reduce="sum", threshold=100.0).threshold == 100.0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"out_channels": 0}, "out_channels"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"padding": "full"}, "padding"),
        ({"pool": 0}, "pool"),
        ({"activation": "swish"}, "activation"),
        ({"norm": "batch"}, "norm"),
        ({"norm_over": "space"}, "norm_over"),
        ({"goodness_reduce": "max"}, "goodness_reduce"),
        ({"threshold": -1.0}, "threshold"),
        ({"goodness_reduce": "sum"}, "input_size"),
        ({"input_size": (2, 2), "padding": "valid"}, "input_size"),
        ({"optimizer": "lbfgs"}, "optimizer"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        make(**options)
    assert info.value.field == field


def test_bad_input_shape_is_a_clear_error() -> None:
    layer = make(input_size=(6, 6))
    with pytest.raises(InvalidValueError, match=r"input shape.*\(batch, 3, 6, 6\)"):
        layer(torch.randn(2, 3, 5, 5))
    with pytest.raises(InvalidValueError, match="input shape"):
        make()(torch.randn(2, 4, 6, 6))


@pytest.mark.parametrize("norm", ["rms", "l2", "none"])
@pytest.mark.parametrize("norm_over", ["channels", "sample"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_forward_codes_equals_the_full_input(norm: str, norm_over: str, padding: str) -> None:
    layer = make(in_channels=2 + 4, norm=norm, norm_over=norm_over, padding=padding, pool=2)
    x = torch.randn(3, 2, 7, 7)
    codes = torch.eye(4) * 1.5  # one-hot labels: every code has the same length
    fast = layer.forward_codes(x, codes)
    assert fast.shape == (3 * 4, 8, *layer.output_size((7, 7)))  # type: ignore[misc]
    assert torch.allclose(fast, layer(with_codes(x, codes)), atol=1e-5)
    uneven = torch.rand(5, 4)  # codes of different lengths take the full path
    assert torch.allclose(layer.forward_codes(x, uneven), layer(with_codes(x, uneven)), atol=1e-5)


def test_train_step_separates_positive_from_negative() -> None:
    layer = make(in_channels=1, out_channels=6, lr=0.01)
    x_pos = torch.randn(32, 1, 6, 6)
    x_pos[:, :, :, :3] += 2.0  # positives: bright left half
    x_neg = torch.randn(32, 1, 6, 6)
    x_neg[:, :, :, 3:] += 2.0  # negatives: bright right half
    first = layer.train_step(x_pos, x_neg)
    for _ in range(60):
        result = layer.train_step(x_pos, x_neg)
    assert result.h_pos.shape == (32, 6, 6, 6) and result.g_neg.shape == (32,)
    assert float(result.loss) < float(first.loss)
    assert float(result.g_pos.mean()) > layer.threshold > float(result.g_neg.mean())
    assert result.h_pos.grad_fn is None and result.g_pos.grad_fn is None


def test_registered_factory_builds_the_layer() -> None:
    layer = ffcore.create_layer("ffconv", in_channels=2, out_channels=4, kernel_size=5, pool=2)
    assert isinstance(layer, FFConv2d)
    assert (layer.kernel_size, layer.pool_size, layer.lr) == (5, 2, 3e-3)
    assert "pool=2" in repr(layer) and "threshold=4" in repr(layer)
