"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's layout and downloader.

Files already on disk are read directly (IDX parsed into tensors, no PIL); when they are
missing and ``download`` is on, torchvision fetches them into the same layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ffcore.data import make_splits
from ffcore.errors import DataError
from ffcore.interfaces import DataSplits, standardization
from ffplugins.datasets.idx import read_idx

DATA_ROOT_ENV = "FFLIB_DATA"
#: 8-bit images: raw pixels are divided by this to reach [0, 1].
PIXEL_MAX = 255.0
#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (torchvision's span several)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def default_root() -> Path:
    """``$FFLIB_DATA`` if set, else ``~/.cache/fflib/data``."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else Path.home() / ".cache" / "fflib" / "data"


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx_files(directory: Path) -> dict[str, tuple[Path, Path]] | None:
    """The four IDX files (plain or ``.gz``) in ``directory``, or ``None`` if any is missing."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, (images, labels) in _IDX_FILES.items():
        image_path, label_path = _find(directory, images), _find(directory, labels)
        if image_path is None or label_path is None:
            return None
        found[split] = (image_path, label_path)
    return found


def _load_idx_pair(images: Path, labels: Path) -> tuple[Tensor, Tensor]:
    x = read_idx(images)
    y = read_idx(labels).long()
    if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{images} / {labels}: expected N images of H x W and N labels, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x.unsqueeze(1).float().div_(PIXEL_MAX), y


def _torchvision_download(folder: str, root: Path) -> None:
    import torchvision

    dataset_class: Callable[..., Any] = getattr(torchvision.datasets, folder)
    for train in (True, False):
        try:
            dataset_class(str(root), train=train, download=True)
        except Exception as exc:  # network errors, checksum errors, ...
            raise DataError(f"could not download {folder} into {root}: {first_line(exc)}") from exc


def load_mnist_like(
    name: str,
    folder: str,
    *,
    root: str | os.PathLike[str] | None,
    download: bool,
    extra_dirs: Sequence[Path] = (),
    class_names: Sequence[str] = (),
    val_split: float,
    use: float,
    seed: int,
) -> DataSplits:
    """An MNIST-format data set from ``root/<folder>/raw`` (torchvision's layout)."""
    base = Path(root) if root is not None else default_root()
    raw = base / folder / "raw"
    candidates = [raw, *(d for d in extra_dirs if root is None)]
    files = next((f for f in (find_idx_files(d) for d in candidates) if f is not None), None)
    if files is None and download:
        _torchvision_download(folder, base)
        files = find_idx_files(raw)
    if files is None:
        expected = ", ".join(f"{stem}[.gz]" for pair in _IDX_FILES.values() for stem in pair)
        hint = "" if download else " (downloading is off: drop --no-download to fetch it)"
        raise DataError(f"dataset {name!r}: no data in {raw}; expected the files {expected}{hint}")
    train = _load_idx_pair(*files["train"])
    test = _load_idx_pair(*files["test"])
    preprocessing = standardization(train[0], raw_max=PIXEL_MAX)
    train_x, test_x = preprocessing.standardise(train[0]), preprocessing.standardise(test[0])
    return make_splits(
        name,
        (train_x, train[1]),
        (test_x, test[1]),
        num_classes=10,
        val_split=val_split,
        use=use,
        seed=seed,
        class_names=class_names,
        preprocessing=preprocessing,
    )


def mnist(
    root: str | None = None,
    download: bool = True,
    val_split: float = 0.1,
    use: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """MNIST handwritten digits (28x28, 60k/10k) via torchvision."""
    return load_mnist_like(
        "mnist", "MNIST", root=root, download=download, val_split=val_split, use=use, seed=seed
    )


def fashion_mnist(
    root: str | None = None,
    download: bool = True,
    val_split: float = 0.1,
    use: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """Fashion-MNIST (28x28, 60k/10k); also found in Debian's dataset-fashion-mnist."""
    return load_mnist_like(
        "fashion-mnist",
        "FashionMNIST",
        root=root,
        download=download,
        extra_dirs=(DEBIAN_FASHION_MNIST,),
        class_names=FASHION_CLASSES,
        val_split=val_split,
        use=use,
        seed=seed,
    )


def cifar10(
    root: str | None = None,
    download: bool = True,
    val_split: float = 0.1,
    use: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """CIFAR-10 (3x32x32, 50k/10k) via torchvision."""
    import torchvision

    base = Path(root) if root is not None else default_root()
    tensors: list[tuple[Tensor, Tensor]] = []
    for train in (True, False):
        try:
            data = torchvision.datasets.CIFAR10(str(base), train=train, download=download)
        except Exception as exc:
            hint = "" if download else " (downloading is off: drop --no-download to fetch it)"
            raise DataError(
                f"dataset 'cifar10': cannot load from {base}: {first_line(exc)}{hint}"
            ) from exc
        x = torch.as_tensor(data.data).permute(0, 3, 1, 2).float().div_(PIXEL_MAX)
        tensors.append((x, torch.as_tensor(data.targets, dtype=torch.long)))
    preprocessing = standardization(tensors[0][0], raw_max=PIXEL_MAX)
    train_x, test_x = (preprocessing.standardise(t[0]) for t in tensors)
    return make_splits(
        "cifar10",
        (train_x, tensors[0][1]),
        (test_x, tensors[1][1]),
        num_classes=10,
        val_split=val_split,
        use=use,
        seed=seed,
        class_names=CIFAR10_CLASSES,
        preprocessing=preprocessing,
    )
