"""Sizes are checked before anything is allocated: a run that cannot fit says so in one
line, with its estimate, instead of an allocator traceback or a killed process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ffcore.sizing
from ffcore.config import TrainConfig
from ffcore.sizing import (
    MemoryLimitError,
    available_memory,
    estimate_training_memory,
    human_bytes,
    on_meta_device,
)
from ffcore.training import EVAL_BATCH_SIZE, build_run
from tests.core.checkpoint_surgery import assert_one_clean_error, invoke

GIB = 1 << 30


@pytest.fixture
def sixteen_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device has 16 GiB free, whatever this machine has."""
    monkeypatch.setattr(ffcore.sizing, "available_memory", lambda device: 16 * GIB)


@pytest.mark.parametrize(
    ("layers", "needs"),
    [("10000000", "weights 3.2 GiB"), ("100000,100000", "weights 37.3 GiB")],
)
def test_a_run_too_large_for_the_device_is_refused_with_its_estimate(
    sixteen_gib: None, tmp_path: Path, layers: str, needs: str
) -> None:
    result = invoke("train", "--layers", layers, "--device", "cpu", "--out", str(tmp_path / "x"))
    line = assert_one_clean_error(result, "Error: this run needs about", needs)
    assert "but cpu has 16.0 GiB free: use smaller layers or batches" in line
    assert "model ffc" not in result.output  # refused before it was built


def test_a_twenty_digit_width_is_refused_when_parsed() -> None:
    result = invoke("train", "--layers", "12345678901234567890", "--device", "cpu")
    assert_one_clean_error(
        result, "invalid layers: [12345678901234567890] (expected a list of 1 to 10,000 widths"
    )


def test_the_check_can_be_turned_off(sixteen_gib: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(layers=[64], epochs=1, device="cpu")
    monkeypatch.setattr(ffcore.sizing, "available_memory", lambda device: 1024)
    with pytest.raises(MemoryLimitError, match=r"this run needs about .* but cpu has 1\.0 KiB"):
        build_run(config)
    monkeypatch.setenv("FFLIB_MEMORY_CHECK", "0")
    assert build_run(config).model is not None


def test_the_estimate_counts_what_the_run_holds() -> None:
    import ffcore

    outline = on_meta_device(
        lambda: ffcore.create_model("ffnet", input_shape=(1, 8, 8), num_classes=10, layers=[32])
    )
    assert outline is not None
    assert all(p.device.type == "meta" for p in outline.parameters())  # nothing allocated
    estimate = estimate_training_memory(
        outline,
        input_shape=(1, 8, 8),
        num_classes=10,
        batch_size=128,
        eval_batch_size=EVAL_BATCH_SIZE,
        data_bytes=1000,
    )
    weights = (74 * 32 + 32) * 4
    buffers = sum(b.numel() * 4 for b in outline.buffers())  # the layer's running statistics
    assert estimate.parameters == weights + buffers and estimate.gradients == weights
    assert estimate.optimizer == 2 * weights  # Adam's two moments
    assert estimate.activations == 3 * EVAL_BATCH_SIZE * 10 * 32 * 4
    assert estimate.total == 4 * weights + buffers + 1000 + estimate.activations
    assert human_bytes(estimate.total).endswith("MiB")


def test_available_memory_is_known_on_the_cpu() -> None:
    free = available_memory(torch.device("cpu"))
    assert free is not None and free > 0


def test_sizes_beyond_what_torch_can_describe_are_one_line() -> None:
    import ffcore

    with pytest.raises(MemoryLimitError, match="too large to describe"):
        on_meta_device(
            lambda: ffcore.create_model(
                "ffnet", input_shape=(4,), num_classes=2, layers=[2**62, 2**62]
            )
        )
