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


def test_softmax_is_registered_and_reads_no_threshold() -> None:
    assert "softmax" in ffcore.list_losses()
    loss = ffcore.create_loss("softmax")
    assert isinstance(loss, FFLoss) and not loss.uses_threshold


def test_softmax_hand_computed_over_each_positive_and_its_own_negatives() -> None:
    loss = ffcore.create_loss("softmax", alpha=2.0)
    g_pos = torch.tensor([1.0, 0.5])
    g_neg = torch.tensor([0.0, 2.0, 1.0, -1.0])  # sample-major: sample 0 has 0, 2; 1 has 1, -1

    def cross_entropy(competing: list[float]) -> float:
        logits = [2.0 * g for g in competing]
        return math.log(sum(math.exp(v) for v in logits)) - logits[0]

    expected = (cross_entropy([1.0, 0.0, 2.0]) + cross_entropy([0.5, 1.0, -1.0])) / 2
    assert loss(g_pos, g_neg, 123.0).item() == pytest.approx(expected, rel=1e-6)


def test_softmax_pairs_negatives_sample_major() -> None:
    """Sample 0's negatives compete with sample 0 only: swapping negatives within a sample
    changes nothing, moving them to another sample does."""
    loss = ffcore.create_loss("softmax")
    g_pos = torch.tensor([1.0, 0.0])
    own = torch.tensor([0.9, 0.8, -5.0, -6.0])  # close to positive 0, far below positive 1
    within = torch.tensor([0.8, 0.9, -6.0, -5.0])
    across = torch.tensor([0.9, -5.0, 0.8, -6.0])  # copy-major reading of the same goodness
    assert loss(g_pos, within, 0.0).item() == pytest.approx(loss(g_pos, own, 0.0).item())
    assert abs(loss(g_pos, across, 0.0).item() - loss(g_pos, own, 0.0).item()) > 0.1


@pytest.mark.parametrize(("positives", "negatives"), [(3, 4), (3, 0), (0, 0)])
def test_softmax_refuses_negatives_that_are_not_k_per_positive(
    positives: int, negatives: int
) -> None:
    loss = ffcore.create_loss("softmax")
    with pytest.raises(InvalidValueError, match="negative batch size"):
        loss(torch.zeros(positives), torch.zeros(negatives), 0.0)


def test_softmax_gradient_raises_positive_and_lowers_negative_goodness() -> None:
    loss = ffcore.create_loss("softmax")
    g_pos = torch.tensor([0.3, -0.2], requires_grad=True)
    g_neg = torch.tensor([0.1, 0.4, 0.0, -0.5, 0.2, 0.2], requires_grad=True)
    torch.autograd.backward(loss(g_pos, g_neg, 0.0))
    assert g_pos.grad is not None and g_neg.grad is not None
    assert (g_pos.grad < 0).all() and (g_neg.grad > 0).all()  # descent: pos up, negs down
    # each sample's gradients balance: the softmax's probabilities sum to one
    per_sample = g_pos.grad + g_neg.grad.view(2, 3).sum(1)
    torch.testing.assert_close(per_sample, torch.zeros(2), atol=1e-6, rtol=0)


def test_softmax_is_finite_for_huge_goodness_and_refuses_bad_alpha() -> None:
    loss = ffcore.create_loss("softmax")
    value = loss(torch.tensor([1e4], dtype=torch.bfloat16), torch.tensor([-1e4, 1e4]), 0.0)
    assert torch.isfinite(value)
    with pytest.raises(InvalidValueError, match="alpha"):
        ffcore.create_loss("softmax", alpha=0.0)
