"""Offline data: flat folders of IDX files, and errors that say how to work offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ffcore
from ffcore.cli.main import cli
from ffcore.errors import DataError
from ffplugins.datasets import vision
from tests.plugins.test_datasets import TRAIN_COUNT, _write_mnist_files

OFFLINE_FIX = "--data-root DIR --no-download"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_flat_folder_of_gz_files_is_a_data_root(tmp_path: Path, name: str) -> None:
    written = _write_mnist_files(tmp_path, gz=True)  # the layout Debian and mirrors ship
    splits = ffcore.load_dataset(name, root=str(tmp_path), download=False, val_split=0.0)
    assert len(splits.train) == TRAIN_COUNT
    assert splits.train.y.tolist() == written["train-labels-idx1-ubyte"].long().tolist()


def test_the_data_sets_own_folder_without_raw_is_found(tmp_path: Path) -> None:
    _write_mnist_files(tmp_path / "FashionMNIST", gz=False)
    splits = ffcore.load_dataset("fashion-mnist", root=str(tmp_path), download=False)
    assert splits.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_missing_idx_files_offline_name_the_directory_the_fix_and_the_layout(
    tmp_path: Path, name: str, folder: str
) -> None:
    with pytest.raises(DataError) as info:
        ffcore.load_dataset(name, root=str(tmp_path), download=False)
    message = str(info.value)
    assert str(tmp_path / folder / "raw") in message
    assert OFFLINE_FIX in message and f"DIR/{folder}/raw/" in message
    assert "t10k-labels-idx1-ubyte[.gz]" in message and "download=True" not in message


def test_a_partly_filled_folder_names_the_missing_files(tmp_path: Path) -> None:
    _write_mnist_files(tmp_path, gz=True, skip=("t10k-images-idx3-ubyte",))
    with pytest.raises(DataError, match=rf"{tmp_path} lacks t10k-images-idx3-ubyte;"):
        ffcore.load_dataset("mnist", root=str(tmp_path), download=False)


def test_a_failed_download_says_how_to_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(vision, "_torchvision_download", no_network)
    with pytest.raises(DataError) as info:
        ffcore.load_dataset("mnist", root=str(tmp_path))
    message = str(info.value)
    assert "could not download MNIST into" in message and "name resolution" in message
    assert OFFLINE_FIX in message


def test_cifar10_offline_names_the_fix_not_torchvisions_download_flag(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ffcore.load_dataset("cifar10", root=str(tmp_path), download=False)
    message = str(info.value)
    assert OFFLINE_FIX in message and "DIR/cifar-10-batches-py/" in message
    assert "data_batch_1" in message and "download=True" not in message


def test_cifar10_files_that_fail_their_checksums_say_so(tmp_path: Path) -> None:
    folder = tmp_path / vision.CIFAR10_FOLDER
    folder.mkdir()
    for name in vision.CIFAR10_FILES:
        (folder / name).write_bytes(b"not the real file")
    # the batches folder itself is accepted as the data root too
    with pytest.raises(DataError) as info:
        ffcore.load_dataset("cifar10", root=str(folder), download=False)
    message = str(info.value)
    assert "do not match CIFAR-10's checksums" in message and OFFLINE_FIX in message


def test_ff_train_reports_missing_offline_data_in_one_line(tmp_path: Path) -> None:
    args = ["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--no-download"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: dataset 'mnist': no data in ")
    assert OFFLINE_FIX in result.output and "Traceback" not in result.output


def test_the_three_factories_share_one_signature() -> None:
    names = ("mnist", "fashion-mnist", "cifar10")
    options = [ffcore.get_component("dataset", name).option_names() for name in names]
    assert options == [["root", "download", "val_split", "use", "seed"]] * 3
