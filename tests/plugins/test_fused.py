"""The fused activation and goodness step: same values and gradients as the plain one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.errors import InvalidValueError
from ffcore.interfaces import GoodnessFunction
from ffcore.precision import autocast
from ffplugins.dense import FFDense
from ffplugins.fused import activation_goodness, fused_goodness_scale
from ffplugins.goodness import SumSquares


def _plain(
    raw: Tensor, scale: Tensor | None, bias: Tensor | None, factor: float, activation: str
) -> tuple[Tensor, Tensor]:
    pre = raw if scale is None else raw * scale
    pre = pre if bias is None else pre + bias
    h = torch.relu(pre) if activation == "relu" else pre
    return h, factor * h.square().sum(1)


@pytest.mark.parametrize("activation", ["relu", "identity"])
@pytest.mark.parametrize("with_scale", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("factor", [1.0, 0.25, -1.0])
def test_values_and_gradients_match_the_plain_step(
    activation: str, with_scale: bool, with_bias: bool, factor: float
) -> None:
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    scale = torch.rand(6, 1, generator=generator, dtype=torch.float64) + 0.5
    bias = torch.randn(5, generator=generator, dtype=torch.float64)
    weights = torch.randn(6, generator=generator, dtype=torch.float64)
    results = []
    for step in (activation_goodness, None):
        raw_leaf = raw.clone().requires_grad_()
        bias_leaf = bias.clone().requires_grad_()
        args = (raw_leaf, scale if with_scale else None, bias_leaf if with_bias else None)
        if step is None:
            h, g = _plain(*args, factor, activation)
        else:
            h, g = step(*args, factor=factor, activation=activation)
        torch.autograd.backward((g * weights).sum())
        results.append((h.detach(), g.detach(), raw_leaf.grad, bias_leaf.grad))
    (h, g, grad_raw, grad_bias), (h_ref, g_ref, grad_raw_ref, grad_bias_ref) = results
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(grad_raw, grad_raw_ref)
    if with_bias:
        torch.testing.assert_close(grad_bias, grad_bias_ref)
    else:
        assert grad_bias is None


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_gradcheck_with_a_loss_on_the_activations_too(activation: str) -> None:
    """Peer normalisation puts a loss on ``h`` itself: the backward then needs the mask."""
    generator = torch.Generator().manual_seed(1)
    raw = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(4, 1, generator=generator, dtype=torch.float64) + 0.5

    def both(raw: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        return activation_goodness(raw, scale, bias, factor=0.5, activation=activation)

    assert torch.autograd.gradcheck(both, (raw, bias))


def test_other_activations_are_refused() -> None:
    with pytest.raises(InvalidValueError, match=r"activation.*'gelu'.*relu, identity"):
        activation_goodness(torch.ones(2, 2), None, None, factor=1.0, activation="gelu")


class _AbsSum(GoodnessFunction):
    def __call__(self, h: Tensor) -> Tensor:
        return h.abs().sum(1)

    def default_threshold(self, num_features: int) -> float:
        return 1.0


@pytest.mark.parametrize(
    ("activation", "goodness", "expected"),
    [
        ("relu", "sum-squares", 1.0),
        ("identity", "sum-squares", 1.0),
        ("relu", "mean-squares", 1 / 8),
        ("relu", "neg-sum-squares", -1.0),
        ("relu", "neg-mean-squares", -1 / 8),
        ("gelu", "sum-squares", None),
        ("tanh", "mean-squares", None),
    ],
)
def test_which_layers_fuse(activation: str, goodness: str, expected: float | None) -> None:
    built = ffcore.create_goodness(goodness)
    assert fused_goodness_scale(activation, built, 8) == expected
    layer = FFDense(4, 8, activation=activation, goodness=goodness)
    assert layer.fused_goodness_scale() == expected
    # a goodness that does not say it is a sum of squares is never fused
    assert fused_goodness_scale(activation, _AbsSum(), 8) is None


def _twin_layers(**options: object) -> tuple[FFDense, FFDense]:
    torch.manual_seed(0)
    fused = FFDense(12, 16, **options)  # type: ignore[arg-type]
    plain = FFDense(12, 16, **options)  # type: ignore[arg-type]
    plain.load_state_dict(fused.state_dict())
    plain.fused_goodness_scale = lambda: None  # type: ignore[method-assign]
    return fused, plain


def _step_both(
    fused: FFDense, plain: FFDense, step: Callable[[FFDense, Tensor], object], steps: int = 3
) -> None:
    generator = torch.Generator().manual_seed(2)
    for _ in range(steps):
        x = torch.randn(10, 12, generator=generator)
        results = [step(layer, x) for layer in (fused, plain)]
        for got, want in zip(results[0], results[1], strict=True):  # type: ignore[call-overload]
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"goodness": "mean-squares"},
        {"goodness": "neg-sum-squares", "maximise": False},
        {"norm": "none", "bias": False},
        {"peer_norm": 0.03},
        {"activation": "identity"},
    ],
)
def test_train_joint_takes_the_same_steps_fused(options: dict[str, object]) -> None:
    fused, plain = _twin_layers(**options)
    assert fused.fused_goodness_scale() is not None

    def step(layer: FFDense, x: Tensor) -> tuple[Tensor, ...]:
        result = layer.train_joint(x, 4)
        return result.h, result.g, result.loss

    _step_both(fused, plain, step)


def test_train_tiled_takes_the_same_steps_fused() -> None:
    fused, plain = _twin_layers()
    codes = torch.nn.functional.one_hot(torch.arange(10) % 2, 2).float()

    def step(layer: FFDense, x: Tensor) -> tuple[Tensor, ...]:
        result = layer.train_tiled(x[:5, :10], codes, 5)
        return result.h, result.g, result.loss

    _step_both(fused, plain, step)


class _CountingSumSquares(SumSquares):
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, h: Tensor) -> Tensor:
        self.calls += 1
        return super().__call__(h)


def test_fused_step_runs_without_calling_the_goodness_function() -> None:
    goodness = _CountingSumSquares()
    layer = FFDense(12, 16, goodness=goodness)
    layer.train_joint(torch.randn(6, 12), 3)
    assert goodness.calls == 0
    layer.activation_name = "gelu"  # not fusable: the goodness function computes it
    layer.train_joint(torch.randn(6, 12), 3)
    assert goodness.calls == 1


def test_a_hook_that_replaces_the_output_gets_the_goodness_of_its_output() -> None:
    """The fused goodness belongs to the activations computed with it, nothing else."""
    fused, plain = _twin_layers()
    for layer in (fused, plain):
        layer.register_forward_hook(lambda module, inputs, out: out * 2)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(6, 12, generator=generator)
    got, want = fused.train_joint(x, 3), plain.train_joint(x, 3)
    torch.testing.assert_close(got.g, want.g)
    torch.testing.assert_close(got.g, fused.goodness(got.h))


def test_forward_keeps_no_goodness() -> None:
    """No pass leaves tensors behind on the layer (beyond parameters and buffers)."""
    layer = FFDense(12, 16)
    with torch.no_grad():
        layer(torch.randn(3, 12))
    layer(torch.randn(3, 12))  # a differentiable pass too
    assert not [name for name, value in vars(layer).items() if isinstance(value, Tensor)]


def test_fused_step_under_bf16_is_float32_and_close_to_fp32() -> None:
    fused, plain = _twin_layers()
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(4))
    with autocast(torch.device("cpu"), "bf16"):
        result = fused.train_joint(x, 16)
    reference = plain.train_joint(x, 16)
    assert result.h.dtype == result.g.dtype == torch.float32
    torch.testing.assert_close(result.g, reference.g, rtol=0.05, atol=0.05)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fused.parameters())
