"""MNIST, Fashion-MNIST and CIFAR-10 from files on disk, or through torchvision's downloader.

Files already on disk are read directly (IDX parsed into tensors, no PIL). They are looked
for in torchvision's layout under the data root (``ROOT/MNIST/raw/``,
``ROOT/cifar-10-batches-py/``) and, for the IDX data sets, also in ``ROOT/MNIST/`` and in
``ROOT`` itself: the flat folder of ``.gz`` files that Debian and most mirrors ship
(``--data-root /usr/share/datasets/fashion-mnist``). When they are missing and ``download``
is on, torchvision fetches them into its layout. Every failure says what to do offline:
where to put which files, and ``--data-root DIR --no-download``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
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
#: The folder ``cifar-10-python.tar.gz`` unpacks to, and the files torchvision reads in it.
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

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


def _missing_idx_files(directory: Path) -> list[str]:
    return [stem for pair in _IDX_FILES.values() for stem in pair if _find(directory, stem) is None]


def _load_idx_pair(images: Path, labels: Path) -> tuple[Tensor, Tensor]:
    x = read_idx(images)
    y = read_idx(labels).long()
    if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{images} / {labels}: expected N images of H x W and N labels, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x.unsqueeze(1).float().div_(PIXEL_MAX), y


@dataclass(frozen=True)
class VisionDataset:
    """One of the downloadable data sets: its name, torchvision class, what its files
    are, how to load them, and what to tell a user who has none of them."""

    name: str
    #: torchvision's class name, also its folder under the data root for the IDX sets.
    torchvision_class: str
    description: str
    class_names: tuple[str, ...]
    #: Folders tried when no data root is given (Debian's package data).
    system_dirs: tuple[Path, ...] = ()

    def offline_hint(self, base: Path) -> str:
        """What to do without a network: the files, where they go, the options."""
        if self.torchvision_class == "CIFAR10":
            files = ", ".join(CIFAR10_FILES)
            where = f"DIR/{CIFAR10_FOLDER}/ (the unpacked cifar-10-python.tar.gz: {files})"
        else:
            files = ", ".join(f"{stem}[.gz]" for pair in _IDX_FILES.values() for stem in pair)
            where = f"DIR itself or DIR/{self.torchvision_class}/raw/ ({files})"
        return (
            f"offline, put the files in {where} and pass --data-root DIR --no-download "
            f"(Python: root=DIR, download=False); or, with a network, drop --no-download to "
            f"fetch them into {base}"
        )


MNIST = VisionDataset(
    "mnist", "MNIST", "MNIST handwritten digits (28x28, 60k/10k) via torchvision.", ()
)
FASHION_MNIST = VisionDataset(
    "fashion-mnist",
    "FashionMNIST",
    "Fashion-MNIST (28x28, 60k/10k); also found in Debian's dataset-fashion-mnist.",
    FASHION_CLASSES,
    system_dirs=(DEBIAN_FASHION_MNIST,),
)
CIFAR10 = VisionDataset(
    "cifar10", "CIFAR10", "CIFAR-10 (3x32x32, 50k/10k) via torchvision.", CIFAR10_CLASSES
)


def _torchvision(dataset: VisionDataset) -> Callable[..., Any]:
    import torchvision

    found: Callable[..., Any] = getattr(torchvision.datasets, dataset.torchvision_class)
    return found


def _torchvision_download(folder: str, root: Path) -> None:
    """torchvision's downloader for its data set class ``folder``, into ``root``."""
    import torchvision

    dataset_class: Callable[..., Any] = getattr(torchvision.datasets, folder)
    for train in (True, False):
        dataset_class(str(root), train=train, download=True)


def _download(dataset: VisionDataset, base: Path) -> None:
    try:
        _torchvision_download(dataset.torchvision_class, base)
    except Exception as exc:  # network errors, checksum errors, ...
        raise DataError(
            f"dataset {dataset.name!r}: could not download {dataset.torchvision_class} "
            f"into {base} ({type(exc).__name__}: {first_line(exc)}); "
            f"{dataset.offline_hint(base)}"
        ) from exc


def _idx_candidates(dataset: VisionDataset, root: str | os.PathLike[str] | None) -> list[Path]:
    """Where the IDX files may be: torchvision's layout, the data set's folder, the flat
    root; without a root also the system folders (Debian's)."""
    base = Path(root) if root is not None else default_root()
    folder = base / dataset.torchvision_class
    candidates = [folder / "raw", folder]
    if root is not None:
        candidates.append(base)
    else:
        candidates.extend(dataset.system_dirs)
    return candidates


def load_mnist_like(
    dataset: VisionDataset,
    *,
    root: str | os.PathLike[str] | None,
    download: bool,
    val_split: float,
    use: float,
    seed: int,
) -> DataSplits:
    """An MNIST-format data set from the first folder that holds its four IDX files."""
    base = Path(root) if root is not None else default_root()
    candidates = _idx_candidates(dataset, root)
    files = next((f for f in (find_idx_files(d) for d in candidates) if f is not None), None)
    if files is None and download:
        _download(dataset, base)
        files = find_idx_files(candidates[0])
    if files is None:
        partial = next((d for d in candidates if len(_missing_idx_files(d)) < 4), None)
        found = (
            f"{partial} lacks {', '.join(_missing_idx_files(partial))}"
            if partial is not None
            else f"no data in {', '.join(str(d) for d in candidates)}"
        )
        raise DataError(f"dataset {dataset.name!r}: {found}; {dataset.offline_hint(base)}")
    train = _load_idx_pair(*files["train"])
    test = _load_idx_pair(*files["test"])
    return _splits(dataset, train, test, val_split=val_split, use=use, seed=seed)


def _cifar_root(base: Path) -> Path | None:
    """The folder holding ``cifar-10-batches-py`` (``base`` or, given that folder itself,
    its parent), or ``None`` when its files are not all there."""
    for parent in (base, base.parent if base.name == CIFAR10_FOLDER else None):
        if parent is not None and all(
            (parent / CIFAR10_FOLDER / f).is_file() for f in CIFAR10_FILES
        ):
            return parent
    return None


def load_cifar10(
    *, root: str | os.PathLike[str] | None, download: bool, val_split: float, use: float, seed: int
) -> DataSplits:
    """CIFAR-10 from ``ROOT/cifar-10-batches-py`` (torchvision checks its checksums)."""
    base = Path(root) if root is not None else default_root()
    found = _cifar_root(base)
    if found is None and download:
        _download(CIFAR10, base)
        found = _cifar_root(base)
    if found is None:
        raise DataError(
            f"dataset 'cifar10': no data in {base / CIFAR10_FOLDER}; {CIFAR10.offline_hint(base)}"
        )
    tensors: list[tuple[Tensor, Tensor]] = []
    for train in (True, False):
        try:
            data = _torchvision(CIFAR10)(str(found), train=train, download=False)
        except Exception as exc:  # a file that does not match its checksum, mostly
            # torchvision's own words would say "use download=True", not what is wrong
            reason = (
                "its files do not match CIFAR-10's checksums: a partial or damaged copy"
                if "corrupted" in str(exc)
                else f"{type(exc).__name__}: {first_line(exc)}"
            )
            raise DataError(
                f"dataset 'cifar10': cannot read {found / CIFAR10_FOLDER} ({reason}); "
                f"{CIFAR10.offline_hint(base)}"
            ) from exc
        x = torch.as_tensor(data.data).permute(0, 3, 1, 2).float().div_(PIXEL_MAX)
        tensors.append((x, torch.as_tensor(data.targets, dtype=torch.long)))
    return _splits(CIFAR10, *tensors, val_split=val_split, use=use, seed=seed)


def _splits(
    dataset: VisionDataset,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    val_split: float,
    use: float,
    seed: int,
) -> DataSplits:
    preprocessing = standardization(train[0], raw_max=PIXEL_MAX)
    train_x, test_x = preprocessing.standardise(train[0]), preprocessing.standardise(test[0])
    return make_splits(
        dataset.name,
        (train_x, train[1]),
        (test_x, test[1]),
        num_classes=10,
        val_split=val_split,
        use=use,
        seed=seed,
        class_names=dataset.class_names,
        preprocessing=preprocessing,
    )


DatasetFactory = Callable[..., DataSplits]


def _factory(dataset: VisionDataset) -> DatasetFactory:
    """The registered factory of ``dataset``: its options, said once for all three."""

    def load(
        root: str | None = None,
        download: bool = True,
        val_split: float = 0.1,
        use: float = 1.0,
        seed: int = 0,
    ) -> DataSplits:
        options: dict[str, Any] = {"root": root, "download": download}
        options.update(val_split=val_split, use=use, seed=seed)
        if dataset is CIFAR10:
            return load_cifar10(**options)
        return load_mnist_like(dataset, **options)

    load.__name__ = load.__qualname__ = dataset.name.replace("-", "_")
    load.__doc__ = dataset.description
    return load


mnist = _factory(MNIST)
fashion_mnist = _factory(FASHION_MNIST)
cifar10 = _factory(CIFAR10)
