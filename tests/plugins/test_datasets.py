"""Built-in data sets: digits, xor and MNIST-format files in torchvision's layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.errors import DataError, InvalidValueError
from ffcore.interfaces import DataSplits
from ffplugins.datasets.idx import write_idx

TRAIN_COUNT, TEST_COUNT, SIDE = 30, 10, 28


def _images(count: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, SIDE, SIDE), generator=generator, dtype=torch.uint8)


def _labels(count: int, offset: int) -> Tensor:
    return ((torch.arange(count) + offset) % 10).to(torch.uint8)


def _write_mnist_files(
    directory: Path, *, gz: bool, skip: tuple[str, ...] = ()
) -> dict[str, Tensor]:
    """Small MNIST-format files; returns what was written, by file stem."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "train-images-idx3-ubyte": _images(TRAIN_COUNT, 1),
        "train-labels-idx1-ubyte": _labels(TRAIN_COUNT, 0),
        "t10k-images-idx3-ubyte": _images(TEST_COUNT, 2),
        "t10k-labels-idx1-ubyte": _labels(TEST_COUNT, 3),
    }
    for stem, tensor in contents.items():
        if stem not in skip:
            write_idx(directory / (stem + (".gz" if gz else "")), tensor)
    return contents


def _total(splits: DataSplits) -> int:
    return len(splits.train) + (len(splits.val) if splits.val is not None else 0) + len(splits.test)


# --- digits ---------------------------------------------------------------------------


def test_digits_shapes_and_sizes() -> None:
    splits = ffcore.load_dataset("digits")
    assert splits.name == "digits"
    assert _total(splits) == 1797
    assert splits.input_shape == (1, 8, 8)
    assert splits.num_classes == 10
    assert splits.class_names == tuple(str(d) for d in range(10))
    assert splits.val is not None
    train_and_val = len(splits.train) + len(splits.val)
    assert len(splits.val) == math.floor(train_and_val * 0.1)
    for split in (splits.train, splits.val, splits.test):
        assert split.x.shape[1:] == (1, 8, 8)
        assert split.x.dtype == torch.float32
        assert split.y.dtype == torch.long
        assert set(split.y.tolist()) == set(range(10))


def test_digits_without_validation_is_standardised_on_train() -> None:
    splits = ffcore.load_dataset("digits", val_split=0.0)
    assert splits.val is None
    assert len(splits.train) + len(splits.test) == 1797
    assert abs(splits.train.x.mean().item()) < 1e-4
    assert splits.train.x.std().item() == pytest.approx(1.0, abs=1e-4)
    # Pixels take 17 values (0..16); train and test share one affine map, so the union
    # of standardised values still has at most 17 distinct entries.
    values = torch.unique(torch.cat((splits.train.x.flatten(), splits.test.x.flatten())))
    assert len(values) <= 17


def test_digits_test_split_fixed_validation_depends_on_seed() -> None:
    first = ffcore.load_dataset("digits", seed=0)
    second = ffcore.load_dataset("digits", seed=1)
    assert torch.equal(first.test.x, second.test.x)
    assert first.val is not None and second.val is not None
    assert not torch.equal(first.val.y, second.val.y) or not torch.equal(first.val.x, second.val.x)
    again = ffcore.load_dataset("digits", seed=0)
    assert again.val is not None
    assert torch.equal(first.val.x, again.val.x)


def test_digits_use_fraction() -> None:
    full = ffcore.load_dataset("digits", val_split=0.0)
    half = ffcore.load_dataset("digits", val_split=0.0, use=0.5)
    assert len(half.train) == round(len(full.train) * 0.5)
    assert len(half.test) == round(len(full.test) * 0.5)


@pytest.mark.parametrize(("option", "value"), [("val_split", 1.0), ("use", 0.0), ("use", 1.5)])
def test_digits_bad_fractions(option: str, value: float) -> None:
    with pytest.raises(InvalidValueError, match=option):
        ffcore.load_dataset("digits", **{option: value})


# --- xor ------------------------------------------------------------------------------


def test_xor_shapes_and_labels() -> None:
    splits = ffcore.load_dataset("xor", samples=500, noise=0.0, val_split=0.0)
    assert splits.input_shape == (2,)
    assert splits.num_classes == 2
    assert len(splits.train) == 400 and len(splits.test) == 100
    for split in (splits.train, splits.test):
        x, y = split.x, split.y
        # Without noise the inputs are exactly ±1 and the label is the XOR of the signs.
        assert set(x.flatten().tolist()) <= {-1.0, 1.0}
        assert torch.equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).long())
        assert set(y.tolist()) == {0, 1}


def test_xor_noisy_labels_follow_sign_pattern() -> None:
    splits = ffcore.load_dataset("xor", noise=0.1)
    assert splits.val is not None
    assert _total(splits) == 2000
    x = torch.cat((splits.train.x, splits.val.x, splits.test.x))
    y = torch.cat((splits.train.y, splits.val.y, splits.test.y))
    assert x.shape == (2000, 2)
    agree = (y == (x[:, 0] * x[:, 1] < 0).long()).float().mean().item()
    assert agree > 0.99
    assert 0.4 < y.float().mean().item() < 0.6


@pytest.mark.parametrize(("option", "value"), [("samples", 5), ("samples", True), ("noise", -1.0)])
def test_xor_bad_options(option: str, value: object) -> None:
    with pytest.raises(InvalidValueError, match=option):
        ffcore.load_dataset("xor", **{option: value})


# --- MNIST-format data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "gz"),
    [("mnist", "MNIST", False), ("mnist", "MNIST", True), ("fashion-mnist", "FashionMNIST", True)],
)
def test_mnist_like_loads_written_files(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    written = _write_mnist_files(tmp_path / folder / "raw", gz=gz)
    splits = ffcore.load_dataset(name, root=str(tmp_path), download=False, val_split=0.0)
    assert splits.input_shape == (1, SIDE, SIDE)
    assert splits.num_classes == 10
    assert splits.val is None
    assert len(splits.train) == TRAIN_COUNT and len(splits.test) == TEST_COUNT
    assert torch.equal(splits.train.y, written["train-labels-idx1-ubyte"].long())
    assert torch.equal(splits.test.y, written["t10k-labels-idx1-ubyte"].long())
    # Pixels scaled to [0, 1], then standardised with the training set's statistics.
    train = written["train-images-idx3-ubyte"].double() / 255
    test = written["t10k-images-idx3-ubyte"].double() / 255
    mean, std = train.mean(), train.std()
    torch.testing.assert_close(
        splits.train.x, ((train - mean) / std).unsqueeze(1).float(), rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        splits.test.x, ((test - mean) / std).unsqueeze(1).float(), rtol=1e-4, atol=1e-4
    )


def test_fashion_mnist_class_names(tmp_path: Path) -> None:
    _write_mnist_files(tmp_path / "FashionMNIST" / "raw", gz=False)
    splits = ffcore.load_dataset("fashion-mnist", root=str(tmp_path), download=False)
    assert len(splits.class_names) == 10
    assert splits.class_names[0] == "T-shirt/top"
    assert splits.class_names[9] == "Ankle boot"


@pytest.mark.parametrize(("val_split", "use"), [(0.2, 1.0), (0.2, 0.5), (0.1, 0.7)])
def test_mnist_split_sizes(tmp_path: Path, val_split: float, use: float) -> None:
    _write_mnist_files(tmp_path / "MNIST" / "raw", gz=True)
    splits = ffcore.load_dataset(
        "mnist", root=str(tmp_path), download=False, val_split=val_split, use=use
    )
    kept_train = max(1, round(TRAIN_COUNT * use))
    expected_val = math.floor(kept_train * val_split)
    assert splits.val is not None
    assert len(splits.val) == expected_val
    assert len(splits.train) == kept_train - expected_val
    assert len(splits.test) == max(1, round(TEST_COUNT * use))
    labels = torch.cat((splits.train.y, splits.val.y))
    assert ((labels >= 0) & (labels < 10)).all()


def test_mnist_mixed_plain_and_gz_files(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist_files(raw, gz=False, skip=("train-labels-idx1-ubyte",))
    write_idx(raw / "train-labels-idx1-ubyte.gz", _labels(TRAIN_COUNT, 0))
    splits = ffcore.load_dataset("mnist", root=str(tmp_path), download=False, val_split=0.0)
    assert torch.equal(splits.train.y, _labels(TRAIN_COUNT, 0).long())


def test_mnist_default_root_is_fflib_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_mnist_files(tmp_path / "MNIST" / "raw", gz=True)
    monkeypatch.setenv("FFLIB_DATA", str(tmp_path))
    splits = ffcore.load_dataset("mnist", download=False, val_split=0.0)
    assert len(splits.train) == TRAIN_COUNT


def test_one_missing_file_raises_data_error(tmp_path: Path) -> None:
    _write_mnist_files(tmp_path / "MNIST" / "raw", gz=True, skip=("t10k-labels-idx1-ubyte",))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        ffcore.load_dataset("mnist", root=str(tmp_path), download=False)


def test_mismatched_image_and_label_counts_raise_data_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist_files(raw, gz=False, skip=("train-labels-idx1-ubyte",))
    write_idx(raw / "train-labels-idx1-ubyte", _labels(TRAIN_COUNT - 1, 0))
    with pytest.raises(DataError):
        ffcore.load_dataset("mnist", root=str(tmp_path), download=False)


def test_corrupt_file_raises_data_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist_files(raw, gz=False, skip=("t10k-images-idx3-ubyte",))
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"garbage")
    with pytest.raises(DataError):
        ffcore.load_dataset("mnist", root=str(tmp_path), download=False)


def test_out_of_range_labels_raise_data_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist_files(raw, gz=False, skip=("t10k-labels-idx1-ubyte",))
    bad = _labels(TEST_COUNT, 0)
    bad[0] = 10
    write_idx(raw / "t10k-labels-idx1-ubyte", bad)
    with pytest.raises(DataError, match="labels"):
        ffcore.load_dataset("mnist", root=str(tmp_path), download=False)
