"""Preprocessing travels with the model: data sets report it, checkpoints store it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ffcore.checkpoint import read_checkpoint
from ffcore.data import standardize
from ffcore.errors import InvalidValueError
from ffcore.interfaces import Preprocessing, standardization
from ffcore.registry import load_dataset
from tests.core.usage_helpers import digits_raw_test, train_tiny, write_mnist_layout


def test_standardization_matches_standardize_bit_for_bit() -> None:
    x = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    other = torch.rand(7, 1, 4, 4)
    prep = standardization(x, raw_max=255.0)
    expected = standardize(x, other)
    assert torch.equal(prep.standardise(x), expected[0])
    assert torch.equal(prep.standardise(other), expected[1])


def test_raw_integers_are_scaled_then_standardised() -> None:
    prep = Preprocessing(raw_max=255.0, mean=(0.5,), std=(0.25,))
    raw = torch.tensor([[0, 255, 51]], dtype=torch.uint8)
    assert prep(raw)[0].tolist() == pytest.approx([-2.0, 2.0, -1.2])
    assert torch.equal(prep(raw), prep(raw.float() / 255.0))  # floats: on the [0, 1] scale


def test_per_channel_statistics_broadcast_over_channels() -> None:
    prep = Preprocessing(raw_max=None, mean=(0.0, 1.0), std=(1.0, 2.0))
    x = torch.ones(3, 2, 4, 4)
    out = prep(x)
    assert bool((out[:, 0] == 1).all()) and bool((out[:, 1] == 0).all())
    with pytest.raises(InvalidValueError, match="input shape"):
        prep(torch.ones(3, 3, 4, 4))


def test_identity_and_round_trip() -> None:
    identity = Preprocessing()
    x = torch.tensor([[1, 2]])
    assert identity(x).dtype == torch.float32 and identity(x).tolist() == [[1.0, 2.0]]
    prep = Preprocessing(raw_max=16.0, mean=(0.3,), std=(0.4,))
    assert Preprocessing.from_dict(prep.to_dict()) == prep


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"raw_max": 0}, "raw_max"),
        ({"mean": [0.1], "std": [0.0]}, "std"),
        ({"mean": [0.1, 0.2], "std": [1.0]}, "std"),
        ({"mean": ["a"], "std": [1.0]}, "mean"),
        ({"scale": 2}, "preprocessing"),
    ],
)
def test_bad_preprocessing_is_refused_naming_the_field(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidValueError, match=field):
        Preprocessing.from_dict(values)


def test_bool_inputs_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="input dtype"):
        Preprocessing(raw_max=1.0)(torch.ones(2, 2, dtype=torch.bool))


def test_digits_reports_how_its_raw_values_became_inputs() -> None:
    data = load_dataset("digits")
    assert data.preprocessing is not None and data.preprocessing.raw_max == 16.0
    raw, _ = digits_raw_test()
    assert torch.equal(data.preprocessing(raw.unsqueeze(1)), data.test.x)


def test_xor_reports_the_identity() -> None:
    assert load_dataset("xor").preprocessing == Preprocessing()


def test_mnist_layout_reports_8_bit_scaling(tmp_path: Path) -> None:
    pixels, _ = write_mnist_layout(tmp_path)
    data = load_dataset("mnist", root=str(tmp_path), download=False)
    assert data.preprocessing is not None and data.preprocessing.raw_max == 255.0
    assert torch.equal(data.preprocessing(pixels.unsqueeze(1)), data.test.x)


def test_save_run_records_preprocessing_and_classes(tmp_path: Path) -> None:
    path = train_tiny(tmp_path / "run.pt")
    meta = read_checkpoint(path)["meta"]
    assert Preprocessing.from_dict(meta["preprocessing"]) == load_dataset("digits").preprocessing
    assert meta["class_names"] == [str(d) for d in range(10)]
    assert meta["input_shape"] == [1, 8, 8]
