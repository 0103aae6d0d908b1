"""Sparsity measures on vectors with known answers; weight statistics per layer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ffcore.analysis import SPARSITY_KINDS, sparsity, weight_sparsity, weight_stats
from ffcore.cli.main import cli
from ffcore.errors import InvalidValueError


@pytest.mark.parametrize("kind", SPARSITY_KINDS)
def test_one_hot_is_fully_sparse_and_constant_is_dense(kind: str) -> None:
    one_hot = torch.tensor([0.0, 0.0, -5.0, 0.0, 0.0])
    constant = torch.full((7,), 0.3)
    assert float(sparsity(one_hot, kind)) == pytest.approx(1.0, abs=1e-6)
    assert float(sparsity(constant, kind)) == pytest.approx(0.0, abs=1e-6)
    assert float(sparsity(torch.zeros(4), kind)) == 1.0


@pytest.mark.parametrize("kind", SPARSITY_KINDS)
def test_more_concentrated_is_sparser_and_rows_are_independent(kind: str) -> None:
    rows = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 1.0, 1.0, 1.0], [9.0, 1.0, 0.0, 0.0]])
    values = sparsity(rows, kind)
    assert values.shape == (3,)
    assert values[0] < values[1] < values[2]


def test_hand_computed_values() -> None:
    x = torch.tensor([3.0, 4.0, 0.0, 0.0])
    # Hoyer: (sqrt(4) - 7/5) / (sqrt(4) - 1) = 0.6
    assert float(sparsity(x, "hoyer")) == pytest.approx(0.6)
    p = torch.tensor([3 / 7, 4 / 7])
    entropy = float(-(p * p.log()).sum())
    assert float(sparsity(x, "l1-entropy")) == pytest.approx(1 - entropy / math.log(4))
    q = torch.tensor([9 / 25, 16 / 25])
    entropy2 = float(-(q * q.log()).sum())
    assert float(sparsity(x, "l2-entropy")) == pytest.approx(1 - entropy2 / math.log(4))
    # Gini of sorted |x| = [0, 0, 3, 4]: 1 - 2 * sum(x_k/7 * (4 - k + 1/2)/4), times 4/3
    gini = 1 - 2 * ((3 / 7) * (1.5 / 4) + (4 / 7) * (0.5 / 4))
    assert float(sparsity(x, "gini")) == pytest.approx(gini * 4 / 3)


def test_bad_kind_and_length() -> None:
    with pytest.raises(InvalidValueError, match="sparsity kind"):
        sparsity(torch.ones(3), "kurtosis")
    with pytest.raises(InvalidValueError, match="vector length"):
        sparsity(torch.ones(1), "hoyer")


def test_weight_stats_and_sparsity_cover_every_layer() -> None:
    first = nn.Linear(3, 2)
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    stats = weight_stats(model)
    assert list(stats) == ["0.weight", "0.bias", "2.weight"]
    assert stats["0.weight"]["max"] == 1.0 and stats["0.weight"]["min"] == 0.0
    assert stats["0.weight"]["mean"] == pytest.approx(1 / 6)
    assert stats["0.weight"]["norm"] == pytest.approx(1.0)
    sparse = weight_sparsity(model, "hoyer")
    assert list(sparse) == ["0.weight", "2.weight"]
    assert sparse["0.weight"] == pytest.approx(1.0)


def test_ff_eval_stats(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    runner = CliRunner()
    trained = runner.invoke(
        cli, ["train", "--preset", "plain", "--layers", "16", "--epochs", "1", "--out", str(out)]
    )
    assert trained.exit_code == 0, trained.output
    text = runner.invoke(cli, ["eval", str(out), "--stats", "--sparsity", "hoyer"])
    assert text.exit_code == 0, text.output
    header, *rows = text.output.strip().splitlines()
    assert header.split() == ["parameter", "min", "max", "mean", "std", "norm", "sparsity_hoyer"]
    assert [row.split()[0] for row in rows] == ["layers.0.linear.weight", "layers.0.linear.bias"]
    data = json.loads(runner.invoke(cli, ["eval", str(out), "--stats", "--json"]).output)
    assert set(data["layers.0.linear.weight"]) == {
        "min",
        "max",
        "mean",
        "std",
        "norm",
        *(f"sparsity_{k}" for k in SPARSITY_KINDS),
    }
