"""Small holes: NaN in JSON, NaN pixels counted right, empty images, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ffplugins.datasets.idx import write_idx
from tests.core.checkpoint_surgery import (
    assert_one_clean_error,
    invoke,
    rewrite,
    trained_checkpoint,
)

PLAIN = ["train", "--preset", "plain", "--layers", "8", "--epochs", "1", "--device", "cpu"]


def test_eval_stats_json_writes_null_for_nan(tmp_path: Path) -> None:
    saved = trained_checkpoint(tmp_path / "run.pt")

    def poison(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        payload["model"]["layers.0.linear.weight"][0, 0] = math.nan

    bad = rewrite(saved, tmp_path / "nan.pt", poison)
    result = invoke("eval", str(bad), "--stats", "--json")
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.output
    table = json.loads(result.output)
    assert table["layers.0.linear.weight"]["mean"] is None
    assert isinstance(table["layers.0.linear.bias"]["mean"], float)


def fashion_layout(root: Path, train_images: torch.Tensor, test_images: torch.Tensor) -> Path:
    """``root/FashionMNIST/raw`` holding the four IDX files of these images."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(
        raw / "train-labels-idx1-ubyte",
        torch.arange(len(train_images)).remainder(10).to(torch.uint8),
    )
    write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    write_idx(
        raw / "t10k-labels-idx1-ubyte", torch.arange(len(test_images)).remainder(10).to(torch.uint8)
    )
    return root


def test_one_nan_pixel_is_counted_as_one(tmp_path: Path) -> None:
    images = torch.rand(40, 6, 6)
    images[3, 2, 2] = math.nan
    root = fashion_layout(tmp_path / "data", images, torch.rand(20, 6, 6))
    result = invoke(
        *PLAIN, "--dataset", "fashion-mnist", "--data-root", str(root), "--no-download",
        "--val-split", "0",
    )  # fmt: skip
    assert_one_clean_error(
        result, "dataset 'fashion-mnist': train inputs hold 1 NaN or infinite values"
    )


def test_images_of_no_pixels_are_refused(tmp_path: Path) -> None:
    empty = torch.zeros(40, 0, 0, dtype=torch.uint8)
    root = fashion_layout(tmp_path / "data", empty, torch.zeros(20, 0, 0, dtype=torch.uint8))
    result = invoke(*PLAIN, "--dataset", "fashion-mnist", "--data-root", str(root), "--no-download")
    assert_one_clean_error(result, "inputs of shape (1, 0, 0) hold no values")
    assert "test accuracy" not in result.output


def test_a_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    class Offline:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz:\nTried https://example, got:\n"
                "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
            )

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    result = invoke(*PLAIN, "--dataset", "mnist", "--data-root", str(tmp_path / "data"))
    assert_one_clean_error(
        result,
        "could not download MNIST into",
        "Error downloading train-images-idx3-ubyte.gz: Tried https://example, got: <urlopen "
        "error [Errno -3] Temporary failure in name resolution>",
    )
