"""Built-in goodness functions: values on hand-computed inputs and default thresholds."""

from __future__ import annotations

import pytest
import torch

import ffcore
from ffcore.interfaces import GoodnessFunction


def _sum_of_squares_upto(n: int) -> int:
    """0² + 1² + ... + n² (closed form)."""
    return n * (n + 1) * (2 * n + 1) // 6


def test_registered_names_and_aliases() -> None:
    names = ffcore.list_goodness()
    for name in ("sum-squares", "mean-squares", "neg-sum-squares", "neg-mean-squares"):
        assert name in names
        assert isinstance(ffcore.create_goodness(name), GoodnessFunction)
    assert type(ffcore.create_goodness("sum-of-squares")) is type(
        ffcore.create_goodness("sum-squares")
    )
    assert type(ffcore.create_goodness("Mean_Of_Squares")) is type(
        ffcore.create_goodness("mean-squares")
    )


def test_sum_and_mean_of_squares_on_2d_input() -> None:
    h = torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.5, -0.5]])
    sum_sq = ffcore.create_goodness("sum-squares")(h)
    mean_sq = ffcore.create_goodness("mean-squares")(h)
    assert sum_sq.shape == (2,)
    # 1 + 4 + 9 = 14; 0 + 0.25 + 0.25 = 0.5
    torch.testing.assert_close(sum_sq, torch.tensor([14.0, 0.5]))
    torch.testing.assert_close(mean_sq, torch.tensor([14.0 / 3, 0.5 / 3]))


def test_negated_goodness_on_2d_input() -> None:
    h = torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.5, -0.5]])
    torch.testing.assert_close(
        ffcore.create_goodness("neg-sum-squares")(h), torch.tensor([-14.0, -0.5])
    )
    torch.testing.assert_close(
        ffcore.create_goodness("neg-mean-squares")(h), torch.tensor([-14.0 / 3, -0.5 / 3])
    )


def test_goodness_of_4d_activations_reduces_every_non_batch_dim() -> None:
    # Sample 0 holds 0..11, sample 1 holds 12..23.
    h = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    first = _sum_of_squares_upto(11)
    second = _sum_of_squares_upto(23) - first
    expected_sum = torch.tensor([float(first), float(second)])
    sum_sq = ffcore.create_goodness("sum-squares")(h)
    assert sum_sq.shape == (2,)
    torch.testing.assert_close(sum_sq, expected_sum)
    torch.testing.assert_close(ffcore.create_goodness("mean-squares")(h), expected_sum / 12)
    torch.testing.assert_close(ffcore.create_goodness("neg-sum-squares")(h), -expected_sum)
    torch.testing.assert_close(ffcore.create_goodness("neg-mean-squares")(h), -expected_sum / 12)


def test_goodness_of_3d_non_contiguous_activations() -> None:
    h = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
    transposed = h.transpose(1, 2)  # same elements per sample, not contiguous
    assert not transposed.is_contiguous()
    for name in ("sum-squares", "mean-squares"):
        goodness = ffcore.create_goodness(name)
        torch.testing.assert_close(goodness(transposed), goodness(h))
    expected = torch.tensor(
        [
            float(_sum_of_squares_upto(11)),
            float(_sum_of_squares_upto(23) - _sum_of_squares_upto(11)),
        ]
    )
    torch.testing.assert_close(ffcore.create_goodness("sum-squares")(transposed), expected)


def test_goodness_keeps_batch_of_one_and_gradient() -> None:
    h = torch.tensor([[3.0, 4.0]], requires_grad=True)
    g = ffcore.create_goodness("sum-squares")(h)
    assert g.shape == (1,)
    torch.autograd.backward(g.sum())
    assert h.grad is not None
    torch.testing.assert_close(h.grad, torch.tensor([[6.0, 8.0]]))  # d/dh h² = 2h


@pytest.mark.parametrize("width", [1, 32, 500])
def test_default_thresholds(width: int) -> None:
    assert ffcore.create_goodness("sum-squares").default_threshold(width) == float(width)
    assert ffcore.create_goodness("neg-sum-squares").default_threshold(width) == -float(width)
    assert ffcore.create_goodness("mean-squares").default_threshold(width) == 2.0
    assert ffcore.create_goodness("neg-mean-squares").default_threshold(width) == -2.0


def test_sum_squares_threshold_matches_unit_rms_activity() -> None:
    # The design: the sum-of-squares threshold is the goodness of unit-RMS activity.
    width = 64
    h = torch.ones(3, width)
    goodness = ffcore.create_goodness("sum-squares")
    torch.testing.assert_close(goodness(h), torch.full((3,), goodness.default_threshold(width)))


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("name", ["sum-squares", "mean-squares", "neg-sum-squares"])
def test_bfloat16_activations_give_float32_goodness(name: str, requires_grad: bool) -> None:
    """Mixed precision hands over bfloat16 activations; a bfloat16 sum of 2000 squares
    near 2000 would be off by several units, so the sum is taken in float32."""
    h = (torch.rand(3, 2000) * 2).to(torch.bfloat16).requires_grad_(requires_grad)
    goodness = ffcore.create_goodness(name)
    g = goodness(h)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, goodness(h.detach().float()))
    if requires_grad:
        torch.autograd.backward(g.sum())
        assert h.grad is not None and h.grad.dtype == torch.bfloat16
