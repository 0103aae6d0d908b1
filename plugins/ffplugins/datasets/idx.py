"""Reading and writing IDX files (the MNIST format), gzipped or not, without PIL."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import torch
from torch import Tensor

from ffcore.errors import DataError

# IDX type codes -> (torch dtype, big-endian struct code, bytes per item)
_TYPES: dict[int, tuple[torch.dtype, str, int]] = {
    0x08: (torch.uint8, "B", 1),
    0x09: (torch.int8, "b", 1),
    0x0B: (torch.int16, ">h", 2),
    0x0C: (torch.int32, ">i", 4),
    0x0D: (torch.float32, ">f", 4),
    0x0E: (torch.float64, ">d", 8),
}
_CODES = {dtype: code for code, (dtype, _, _) in _TYPES.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc


def read_idx(path: str | os.PathLike[str]) -> Tensor:
    """The tensor stored in an IDX file (``.gz`` is decompressed)."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype, _, itemsize = _TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = 1
    for size in shape:
        count *= size
    if len(data) - header != count * itemsize:
        raise DataError(
            f"{path}: IDX body has {len(data) - header} bytes, expected {count * itemsize} "
            f"for shape {tuple(shape)}"
        )
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8)
    if itemsize == 1:
        tensor = flat.view(dtype)
    else:  # IDX is big-endian: swap to the host order
        tensor = flat.view(-1, itemsize).flip(1).reshape(-1).view(dtype).clone()
    return tensor.reshape(shape)


def write_idx(path: str | os.PathLike[str], tensor: Tensor) -> None:
    """Write ``tensor`` as an IDX file (gzipped when the name ends in ``.gz``)."""
    path = Path(path)
    if tensor.dtype not in _CODES:
        raise DataError(f"IDX cannot store dtype {tensor.dtype}")
    code = _CODES[tensor.dtype]
    _, _, itemsize = _TYPES[code]
    header = bytes([0, 0, code, tensor.dim()]) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    raw = tensor.contiguous().reshape(-1).view(torch.uint8)
    if itemsize > 1:
        raw = raw.view(-1, itemsize).flip(1).reshape(-1)
    body = header + raw.numpy().tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(body)
    else:
        path.write_bytes(body)
