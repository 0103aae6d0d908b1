"""Built-in FF losses: softplus-threshold (Hinton) and SymBa."""

from __future__ import annotations

import math

import pytest
import torch

import ffcore
from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLoss


def _softplus(v: float) -> float:
    """log(1 + e^v), computed in plain Python (stable for large |v|)."""
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def test_registered_names_and_aliases() -> None:
    assert {"softplus-threshold", "symba"} <= set(ffcore.list_losses())
    assert isinstance(ffcore.create_loss("hinton"), type(ffcore.create_loss("softplus-threshold")))
    assert isinstance(ffcore.create_loss("symba"), FFLoss)


def test_softplus_threshold_hand_computed() -> None:
    loss = ffcore.create_loss("softplus-threshold")
    g_pos = torch.tensor([3.0, 5.0])
    g_neg = torch.tensor([1.0, 4.0, 6.5])
    theta = 4.0
    expected = (_softplus(4.0 - 3.0) + _softplus(4.0 - 5.0)) / 2 + (
        _softplus(1.0 - 4.0) + _softplus(4.0 - 4.0) + _softplus(6.5 - 4.0)
    ) / 3
    value = loss(g_pos, g_neg, theta)
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert loss.uses_threshold


def test_softplus_threshold_rewards_separation() -> None:
    loss = ffcore.create_loss("softplus-threshold")
    good = loss(torch.tensor([10.0]), torch.tensor([-10.0]), 0.0)
    bad = loss(torch.tensor([-10.0]), torch.tensor([10.0]), 0.0)
    assert good.item() < 1e-3
    assert bad.item() == pytest.approx(20.0, rel=1e-4)  # softplus(10) * 2 ≈ 10 + 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softplus_threshold_is_finite_for_huge_goodness(dtype: torch.dtype) -> None:
    loss = ffcore.create_loss("softplus-threshold")
    g_pos = torch.tensor([1e4, -1e4], dtype=dtype, requires_grad=True)
    g_neg = torch.tensor([1e4, -1e4], dtype=dtype, requires_grad=True)
    theta = 2.0
    value = loss(g_pos, g_neg, theta)
    assert torch.isfinite(value).all()
    # Hand computed from the values the dtype actually holds.
    p = [float(v) for v in g_pos.detach().double()]
    n = [float(v) for v in g_neg.detach().double()]
    expected = sum(_softplus(theta - v) for v in p) / 2 + sum(_softplus(v - theta) for v in n) / 2
    assert value.item() == pytest.approx(expected, rel=2e-2)
    torch.autograd.backward(value)
    assert g_pos.grad is not None and g_neg.grad is not None
    assert torch.isfinite(g_pos.grad).all() and torch.isfinite(g_neg.grad).all()
    # d/dg_pos softplus(θ - g) / 2 = -sigmoid(θ - g) / 2: ≈ 0 for g = 1e4, ≈ -0.5 for g = -1e4
    torch.testing.assert_close(g_pos.grad.float(), torch.tensor([0.0, -0.5]), atol=1e-2, rtol=0.0)
    torch.testing.assert_close(g_neg.grad.float(), torch.tensor([0.5, 0.0]), atol=1e-2, rtol=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("goodness_name", ["sum-squares", "mean-squares"])
def test_softplus_threshold_finite_for_huge_activations(
    dtype: torch.dtype, goodness_name: str
) -> None:
    goodness = ffcore.create_goodness(goodness_name)
    loss = ffcore.create_loss("softplus-threshold")
    width = 64
    h_pos = torch.full((4, width), 1e4, dtype=dtype, requires_grad=True)
    h_neg = torch.full((4, width), 1e4, dtype=dtype, requires_grad=True)
    value = loss(goodness(h_pos), goodness(h_neg), goodness.default_threshold(width))
    assert torch.isfinite(value).all()
    assert value.item() > 0
    torch.autograd.backward(value)
    assert h_pos.grad is not None and h_neg.grad is not None
    assert torch.isfinite(h_pos.grad).all()
    assert torch.isfinite(h_neg.grad).all()
    # The negatives are far above the threshold, so their gradient pushes them down.
    assert (h_neg.grad > 0).all()


def test_symba_value_and_pairing_with_k_negatives() -> None:
    alpha = 4.0
    loss = ffcore.create_loss("symba", alpha=alpha)
    assert not loss.uses_threshold
    g_pos = torch.tensor([2.0, 0.0])
    # k = 3 negatives per positive, sample-major: rows 0..2 belong to sample 0.
    g_neg = torch.tensor([1.0, 2.0, 3.0, -1.0, 0.0, 5.0])
    pairs = [(2.0, 1.0), (2.0, 2.0), (2.0, 3.0), (0.0, -1.0), (0.0, 0.0), (0.0, 5.0)]
    expected = sum(_softplus(-alpha * (p - n)) for p, n in pairs) / len(pairs)
    assert loss(g_pos, g_neg, 123.0).item() == pytest.approx(expected, rel=1e-6)


def test_symba_one_negative_per_positive() -> None:
    loss = ffcore.create_loss("symba", alpha=2.0)
    g_pos = torch.tensor([1.0, 3.0, -2.0])
    g_neg = torch.tensor([0.5, 4.0, -2.0])
    expected = (_softplus(-2.0 * 0.5) + _softplus(-2.0 * (3.0 - 4.0)) + _softplus(0.0)) / 3
    assert loss(g_pos, g_neg, 0.0).item() == pytest.approx(expected, rel=1e-6)


def test_symba_ignores_threshold() -> None:
    loss = ffcore.create_loss("symba")
    g_pos = torch.tensor([1.0, 2.0])
    g_neg = torch.tensor([0.0, 3.0])
    assert loss(g_pos, g_neg, 0.0).item() == loss(g_pos, g_neg, 1e6).item()


def test_symba_default_alpha_is_four() -> None:
    loss = ffcore.create_loss("symba")
    value = loss(torch.tensor([1.0]), torch.tensor([0.0]), 0.0).item()
    assert value == pytest.approx(_softplus(-4.0), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_symba_finite_for_huge_goodness(dtype: torch.dtype) -> None:
    loss = ffcore.create_loss("symba")
    g_pos = torch.tensor([1e4, -1e4], dtype=dtype, requires_grad=True)
    g_neg = torch.tensor([-1e4, 1e4], dtype=dtype, requires_grad=True)
    value = loss(g_pos, g_neg, 0.0)
    assert torch.isfinite(value).all()
    assert g_pos.dtype == dtype
    # One pair perfectly separated (≈ 0), one reversed: softplus(4 * 2e4) / 2 ≈ 4e4.
    assert value.item() == pytest.approx(4.0 * 2e4 / 2, rel=2e-2)
    torch.autograd.backward(value)
    assert g_pos.grad is not None and torch.isfinite(g_pos.grad).all()


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_symba_rejects_non_positive_alpha(alpha: float) -> None:
    with pytest.raises(InvalidValueError, match="alpha"):
        ffcore.create_loss("symba", alpha=alpha)
