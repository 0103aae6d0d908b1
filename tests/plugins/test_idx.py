"""IDX reading and writing: round trips, the exact byte layout and malformed files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from ffcore.errors import DataError
from ffplugins.datasets.idx import read_idx, write_idx


def _sample(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        return torch.randn(*shape, generator=generator).to(dtype) * 1000
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, shape, generator=generator, dtype=torch.int64).to(
        dtype
    )


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float64]
)
@pytest.mark.parametrize("suffix", [".idx", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)], ids=["1d", "3d"])
def test_round_trip(
    tmp_path: Path, dtype: torch.dtype, suffix: str, shape: tuple[int, ...]
) -> None:
    tensor = _sample(dtype, shape)
    path = tmp_path / f"data{suffix}"
    write_idx(path, tensor)
    loaded = read_idx(path)
    assert loaded.dtype == dtype
    assert tuple(loaded.shape) == shape
    assert torch.equal(loaded, tensor)


def test_round_trip_of_non_contiguous_tensor(tmp_path: Path) -> None:
    tensor = torch.arange(12, dtype=torch.int32).reshape(3, 4).T
    write_idx(tmp_path / "t.idx", tensor)
    assert torch.equal(read_idx(tmp_path / "t.idx"), tensor)


def test_round_trip_of_empty_tensor(tmp_path: Path) -> None:
    tensor = torch.zeros(0, 28, 28, dtype=torch.uint8)
    write_idx(tmp_path / "empty.idx", tensor)
    loaded = read_idx(tmp_path / "empty.idx")
    assert loaded.shape == (0, 28, 28)
    assert loaded.dtype == torch.uint8


def test_written_bytes_follow_the_idx_layout(tmp_path: Path) -> None:
    images = torch.tensor([[1, 2, 3], [250, 0, 7]], dtype=torch.uint8)
    write_idx(tmp_path / "u8", images)
    expected = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3) + bytes([1, 2, 3, 250, 0, 7])
    assert (tmp_path / "u8").read_bytes() == expected

    ints = torch.tensor([1, -2, 70000], dtype=torch.int32)
    write_idx(tmp_path / "i32.gz", ints)
    expected = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">3i", 1, -2, 70000)
    with gzip.open(tmp_path / "i32.gz", "rb") as handle:
        assert handle.read() == expected


def test_reads_hand_built_big_endian_files(tmp_path: Path) -> None:
    body = bytes([0, 0, 0x0D, 2]) + struct.pack(">II", 2, 2)
    body += struct.pack(">4f", 1.5, -2.0, 3.25, 1e30)
    (tmp_path / "f32").write_bytes(body)
    loaded = read_idx(tmp_path / "f32")
    assert loaded.dtype == torch.float32
    torch.testing.assert_close(loaded, torch.tensor([[1.5, -2.0], [3.25, 1e30]]))

    labels = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 4) + bytes([9, 0, 3, 255])
    with gzip.open(tmp_path / "labels.gz", "wb") as handle:
        handle.write(labels)
    assert read_idx(tmp_path / "labels.gz").tolist() == [9, 0, 3, 255]

    int_body = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">2i", -1, 2**30)
    (tmp_path / "i32").write_bytes(int_body)
    assert read_idx(tmp_path / "i32").tolist() == [-1, 2**30]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\x00",
        bytes([1, 0, 0x08, 1]) + struct.pack(">I", 1) + b"\x05",  # first byte not 0
        bytes([0, 1, 0x08, 1]) + struct.pack(">I", 1) + b"\x05",  # second byte not 0
        bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x05",  # unknown type code
        b"PK\x03\x04 not idx at all",
    ],
    ids=["empty", "short", "byte0", "byte1", "type", "zip"],
)
def test_bad_magic_raises_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataError):
        read_idx(path)


def test_truncated_header_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "header.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 60000))  # 2 of 3 sizes missing
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("suffix", [".idx", ".gz"])
def test_truncated_body_raises_data_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"full{suffix}"
    write_idx(path, torch.arange(100, dtype=torch.int32).reshape(10, 10))
    if suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
        with gzip.open(path, "wb") as handle:
            handle.write(raw[:-1])
    else:
        path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="bytes"):
        read_idx(path)


def test_extra_trailing_bytes_raise_data_error(tmp_path: Path) -> None:
    path = tmp_path / "long.idx"
    write_idx(path, torch.zeros(4, dtype=torch.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError):
        read_idx(path)


def test_truncated_gzip_stream_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    write_idx(path, _sample(torch.float32, (50, 50)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        read_idx(path)


def test_not_gzip_with_gz_name_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.gz"
    path.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1) + b"\x05")
    with pytest.raises(DataError):
        read_idx(path)


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float16])
def test_write_rejects_unsupported_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    with pytest.raises(DataError):
        write_idx(tmp_path / "x.idx", torch.zeros(3, dtype=dtype))
    assert not (tmp_path / "x.idx").exists()
