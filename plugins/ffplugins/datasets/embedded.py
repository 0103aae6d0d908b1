"""Data sets that need no download: ``digits`` (embedded) and ``xor`` (synthetic)."""

from __future__ import annotations

from pathlib import Path

import torch

from ffcore.data import make_splits
from ffcore.errors import InvalidValueError
from ffcore.interfaces import DataSplits, Preprocessing, standardization
from ffcore.limits import MAX_SYNTHETIC_SAMPLES
from ffcore.validate import integer, number
from ffplugins.datasets.idx import read_idx

DATA_DIR = Path(__file__).parent / "data"
#: Samples held out as the fixed ``digits`` test split (about 20%).
DIGITS_TEST_SIZE = 360
#: The largest raw ``digits`` value: each pixel counts the set bits of a 4x4 block.
DIGITS_RAW_MAX = 16.0


def digits(val_split: float = 0.1, use: float = 1.0, seed: int = 0) -> DataSplits:
    """1,797 real 8x8 handwritten digits (scikit-learn's copy of UCI's), embedded."""
    raw = read_idx(DATA_DIR / "digits-images-idx3-ubyte.gz").unsqueeze(1)
    x = raw.float() / DIGITS_RAW_MAX
    y = read_idx(DATA_DIR / "digits-labels-idx1-ubyte.gz").long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    test_index, train_index = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    preprocessing = standardization(x[train_index], raw_max=DIGITS_RAW_MAX)
    train_x, test_x = (preprocessing.standardise(t) for t in (x[train_index], x[test_index]))
    return make_splits(
        "digits",
        (train_x, y[train_index]),
        (test_x, y[test_index]),
        num_classes=10,
        val_split=val_split,
        use=use,
        seed=seed,
        class_names=tuple(str(d) for d in range(10)),
        preprocessing=preprocessing,
    )


def xor(
    samples: int = 2000,
    noise: float = 0.1,
    val_split: float = 0.1,
    use: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """Two noisy inputs near {-1, +1}; the label is their XOR (needs a hidden layer)."""
    integer("samples", samples, minimum=10, expected="an integer of at least 10")
    if samples > MAX_SYNTHETIC_SAMPLES:
        raise InvalidValueError("samples", samples, f"at most {MAX_SYNTHETIC_SAMPLES:,}")
    number("noise", noise, low=0, expected="a non-negative number")
    generator = torch.Generator().manual_seed(seed + 7)
    bits = torch.randint(0, 2, (samples, 2), generator=generator)
    x = bits.float() * 2 - 1 + noise * torch.randn(samples, 2, generator=generator)
    y = (bits[:, 0] ^ bits[:, 1]).long()
    cut = samples * 4 // 5
    return make_splits(
        "xor",
        (x[:cut], y[:cut]),
        (x[cut:], y[cut:]),
        num_classes=2,
        val_split=val_split,
        use=use,
        seed=seed,
        class_names=("same", "different"),
        preprocessing=Preprocessing(),  # the inputs are used as they are
    )
