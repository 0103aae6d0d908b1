"""Every seed from 0 to 2^63 - 1 trains and resumes exactly; others are refused when read.

The per-epoch data order used ``seed * 1_000_003 + epoch``, which overflowed torch's 64-bit
seed from about 1.8e13 on; it is now taken modulo 2^64, which changes nothing below that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ffcore.config import TrainConfig
from ffcore.data import epoch_generator, epoch_seed
from ffcore.errors import InvalidValueError
from ffcore.limits import MAX_SEED
from ffcore.runs import resume_run, save_run
from ffcore.training import build_run, train
from tests.core.checkpoint_surgery import assert_one_clean_error, invoke


@pytest.mark.parametrize("seed", [0, 5, 12_345, 9_300_000_000_000, (2**64 - 10) // 1_000_003])
def test_the_epoch_order_of_every_seed_that_worked_is_unchanged(seed: int) -> None:
    for epoch in (0, 1, 59):
        assert epoch_seed(seed, epoch) == seed * 1_000_003 + epoch
        expected = torch.randperm(
            100, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        )
        assert torch.equal(torch.randperm(100, generator=epoch_generator(seed, epoch)), expected)


def test_seeds_up_to_2_63_minus_1_give_distinct_orders() -> None:
    seeds = [2 * 10**13, 2**62, MAX_SEED - 1, MAX_SEED]
    orders = [torch.randperm(1000, generator=epoch_generator(s, 0)) for s in seeds]
    assert all(not torch.equal(a, b) for i, a in enumerate(orders) for b in orders[i + 1 :])
    assert len({epoch_seed(s, 0) for s in seeds}) == len(seeds)


@pytest.mark.parametrize("seed", ["-1", str(2**63), "1e3"])
def test_other_seeds_are_refused_when_parsed(seed: str) -> None:
    result = invoke("train", "--seed", seed, "--device", "cpu")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model ffc" not in result.output
    if seed != "1e3":
        assert_one_clean_error(
            result, f"invalid seed: {seed} (expected an integer from 0 to 2^63 - 1)"
        )
    with pytest.raises(InvalidValueError, match="seed"):
        TrainConfig(seed=-5)


def test_the_largest_seed_trains_and_resumes_exactly(tmp_path: Path) -> None:
    settings = {"layers": [16], "epochs": 2, "device": "cpu", "seed": MAX_SEED, "batch_size": 256}
    whole = build_run(TrainConfig(**settings))  # type: ignore[arg-type]
    train(whole)
    half = build_run(TrainConfig(**{**settings, "epochs": 1}))  # type: ignore[arg-type]
    train(half)
    resumed = resume_run(save_run(half, tmp_path / "half.pt"), {"epochs": 2})
    train(resumed)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
