"""Reader for IDX files (the MNIST / Fashion-MNIST container format), plain or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes,
then the values in row-major order, big-endian. A file whose header or length does not add up raises
:class:`IdxFormatError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ipvae.errors import IpvaeError

IDX_MAGIC_ZERO_BYTES = 2
IDX_HEADER_BYTES = 4  # zero, zero, type code, number of dimensions
IDX_DIM_BYTES = 4  # each dimension size is a big-endian uint32
GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> numpy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES: dict[np.dtype, int] = {dtype: code for code, dtype in IDX_DTYPES.items()}


class IdxFormatError(IpvaeError):
    """An IDX file that is truncated, corrupt or not an IDX file at all."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[: len(GZIP_MAGIC)] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise IdxFormatError(f"IDX file {path} is not a valid gzip stream ({error}).") from None


def parse_idx(payload: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX payload into a numpy array in native byte order."""
    if len(payload) < IDX_HEADER_BYTES or any(payload[:IDX_MAGIC_ZERO_BYTES]):
        raise IdxFormatError(f"IDX file {source} has no valid IDX header (it is not an IDX file or is corrupt).")
    type_code, n_dims = payload[2], payload[3]
    if type_code not in IDX_DTYPES:
        raise IdxFormatError(f"IDX file {source} has unknown element type code 0x{type_code:02X}.")
    dims_end = IDX_HEADER_BYTES + IDX_DIM_BYTES * n_dims
    if len(payload) < dims_end:
        raise IdxFormatError(f"IDX file {source} is truncated inside its header.")
    shape = tuple(int(size) for size in np.frombuffer(payload[IDX_HEADER_BYTES:dims_end], dtype=">u4"))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(payload) - dims_end
    if actual != expected:
        state = "truncated" if actual < expected else "longer than its header says"
        raise IdxFormatError(
            f"IDX file {source} is {state}: header shape {shape} needs {expected} data bytes, found {actual}."
        )
    values = np.frombuffer(payload, dtype=dtype, offset=dims_end).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip detected from its magic bytes, whatever its name)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as an uncompressed IDX payload (the inverse of :func:`parse_idx`)."""
    dtype = np.dtype(array.dtype)
    big_endian = dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype
    if big_endian not in IDX_CODES:
        raise IdxFormatError(f"dtype {dtype} has no IDX type code.")
    header = bytes([0, 0, IDX_CODES[big_endian], array.ndim])
    dims = np.asarray(array.shape, dtype=">u4").tobytes()
    return header + dims + np.ascontiguousarray(array, dtype=big_endian).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an IDX file, gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    payload = encode_idx(array)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
