"""Read a ``torch.save`` zip archive without executing anything: numpy arrays out, no torch, no pickle gadgets.

A torch checkpoint is a zip file holding ``<name>/data.pkl`` (a pickle of the saved object whose tensors are
references to storages) and ``<name>/data/<key>`` (each storage's raw bytes). ``torch.load`` unpickles with
the full power of pickle (any importable callable can be called), and with ``weights_only=True`` it still
hands a TorchScript archive to ``torch.jit.load``, which runs its code. This module never imports torch: its
unpickler resolves a short allow-list of names, each to a function of this module that builds plain values:

    torch._utils._rebuild_tensor_v2 / _rebuild_parameter     -> numpy array (bounds checked, copied)
    torch.<Type>Storage (in the persistent ids)              -> the dtype of the storage's bytes
    collections.OrderedDict, builtins set/frozenset/complex  -> themselves
    numpy scalar and dtype reconstruction (numpy 1 and 2)    -> numpy scalars of numeric dtypes
    _codecs.encode(text, "latin1")                           -> bytes (protocol 2's spelling of bytes)

Any other name (os.system, builtins.eval, getattr, a class of the saving program), a TorchScript archive
(``code/`` or ``constants.pkl`` entries), a plain pickle, a truncated zip, a tensor whose size and strides
overrun its storage, or sizes beyond the limits are refused with ``UnsafeCheckpoint``, one line that names
what was found. Sizes are checked from the zip directory before anything is decompressed.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ipvae.errors import CheckpointError, shown

MAX_ARCHIVE_BYTES = 4 * 2**30  # a checkpoint file larger than this is refused before it is opened as a zip
MAX_PICKLE_BYTES = 64 * 2**20  # data.pkl of a state dict is small: names, shapes, numbers
MAX_ENTRIES = 100_000
MAX_TENSOR_DIMS = 16
STORAGE_DTYPES = {  # torch storage class -> numpy dtype of its bytes (little-endian unless byteorder says big)
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "UntypedStorage": "u1",
}
TORCHSCRIPT_MARKERS = ("code/", "constants.pkl", ".data/version")


class UnsafeCheckpoint(CheckpointError):
    """A checkpoint that would need code execution, or is malformed; the message names what was found."""


@dataclass(frozen=True)
class _StorageType:
    name: str  # e.g. "FloatStorage"


@dataclass(frozen=True)
class _StorageRef:
    dtype: np.dtype
    key: str
    numel: int
    bfloat16: bool = False  # bytes of bfloat16 (read as uint16, widened to float32)


class _DtypeState:
    """numpy.dtype(name, align, copy) as pickled; its byte order arrives by BUILD (``__setstate__``)."""

    def __init__(self, name: object, align: object = False, copy: object = True):
        if not isinstance(name, str):
            raise UnsafeCheckpoint(f"a numpy dtype named by a {type(name).__name__}, not a string")
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], str):
            raise UnsafeCheckpoint("a numpy dtype with an unexpected state")
        if state[1] not in "<>=|":
            raise UnsafeCheckpoint(f"a numpy dtype with byte order {shown(state[1])}")
        if len(state) > 2 and state[2] is not None:
            raise UnsafeCheckpoint("a structured numpy dtype (only plain numeric dtypes are read)")
        self.byteorder = state[1]

    def dtype(self) -> np.dtype:
        try:
            dtype = np.dtype(self.name)
        except TypeError:
            raise UnsafeCheckpoint(f"an unknown numpy dtype {shown(self.name)}") from None
        if dtype.kind not in "biufc":
            raise UnsafeCheckpoint(f"a numpy value of dtype {shown(self.name)} (only numbers are read)")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def _numpy_scalar(dtype: object, data: object = None):
    """numpy.core.multiarray.scalar(dtype, bytes): the number, read from its bytes."""
    if not isinstance(dtype, _DtypeState) or not isinstance(data, bytes):
        raise UnsafeCheckpoint("a numpy scalar that is not a plain number")
    numpy_dtype = dtype.dtype()
    if len(data) != numpy_dtype.itemsize:
        raise UnsafeCheckpoint(f"a numpy scalar of {len(data)} bytes for dtype {numpy_dtype.str}")
    return np.frombuffer(data, dtype=numpy_dtype)[0]


def _latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """_codecs.encode(str, 'latin1'): how protocol-2 pickles spell bytes (a numpy scalar's payload)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpoint("a _codecs.encode call other than latin-1 bytes")
    return text.encode("latin1")


def _refuse_hooks(hooks: object) -> None:
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise UnsafeCheckpoint("a tensor with backward hooks")


class _TorchZipUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class knows only the names above and whose persistent ids are storages."""

    def __init__(self, data: bytes, archive: "_Archive"):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("builtins", "set"): set,
            ("builtins", "frozenset"): frozenset,
            ("builtins", "complex"): complex,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("numpy.core.multiarray", "scalar"): _numpy_scalar,
            ("numpy._core.multiarray", "scalar"): _numpy_scalar,
            ("numpy", "dtype"): _DtypeState,
            ("_codecs", "encode"): _latin1_bytes,
        }
        self.allowed.update({("torch", name): _StorageType(name) for name in STORAGE_DTYPES})
        self.allowed[("torch.storage", "UntypedStorage")] = _StorageType("UntypedStorage")

    def find_class(self, module: str, name: str) -> Any:
        if isinstance(module, str) and isinstance(name, str):  # protocol 2 spells builtins as __builtin__
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpoint(f"{shown(self.archive.path)}: its pickle calls {shown(f'{module}.{name}', 80)}, which is not a tensor, "
                                   "storage, container or number (refused, nothing was executed)") from None

    def persistent_load(self, pid: object) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise UnsafeCheckpoint(f"a persistent reference that is not a torch storage ({type(pid).__name__})")
        name = pid[1].name
        return _StorageRef(dtype=self.archive.storage_dtype(name), key=pid[2], numel=pid[4],
                           bfloat16=STORAGE_DTYPES[name] == "bfloat16")

    def _rebuild_tensor(self, storage: object, offset: object, size: object, stride: object, *rest: object) -> np.ndarray:
        if not isinstance(storage, _StorageRef):
            raise UnsafeCheckpoint("a tensor whose storage is not a storage reference")
        if rest:
            _refuse_hooks(rest[1] if len(rest) > 1 else None)
        return self.archive.tensor(storage, offset, size, stride)

    def _rebuild_parameter(self, data: object, requires_grad: object = False, hooks: object = None) -> np.ndarray:
        if not isinstance(data, np.ndarray):
            raise UnsafeCheckpoint("a parameter that is not a tensor")
        _refuse_hooks(hooks)
        return data


class _Archive:
    """The zip's entries, read lazily, each checked against the limits before it is decompressed."""

    def __init__(self, handle: zipfile.ZipFile, path: Path, max_tensor_bytes: int):
        self.handle, self.path, self.max_tensor_bytes = handle, path, max_tensor_bytes
        infos = handle.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UnsafeCheckpoint(f"{shown(path)} has {len(infos)} zip entries (more than {MAX_ENTRIES})")
        self.entries = {info.filename: info for info in infos}
        markers = [name for name in self.entries if any(f"/{marker}" in name or name.startswith(marker)
                                                        for marker in TORCHSCRIPT_MARKERS)]
        if markers:
            raise UnsafeCheckpoint(f"{shown(path)} is a TorchScript archive ({shown(markers[0], 60)}): TorchScript "
                                   "runs code when loaded, so it is refused (save a state dict with torch.save)")
        pickles = [name for name in self.entries if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UnsafeCheckpoint(f"{shown(path)} is a zip file but not a torch.save archive (no single data.pkl)")
        self.prefix = pickles[0][: -len("data.pkl")]
        order = self._small_entry("byteorder", default=b"little")
        if order not in (b"little", b"big"):
            raise UnsafeCheckpoint(f"{shown(path)} declares byte order {shown(order[:20])}")
        self.byteorder = "<" if order == b"little" else ">"
        self.decoded: dict[str, np.ndarray] = {}
        self.total_bytes = 0

    def _small_entry(self, name: str, default: bytes) -> bytes:
        info = self.entries.get(self.prefix + name)
        if info is None:
            return default
        if info.file_size > 64:
            raise UnsafeCheckpoint(f"{shown(self.path)}: entry {shown(name)} is {info.file_size} bytes")
        return self.handle.read(info).strip()

    def pickle_bytes(self) -> bytes:
        info = self.entries[self.prefix + "data.pkl"]
        if info.file_size > MAX_PICKLE_BYTES:
            raise UnsafeCheckpoint(f"{shown(self.path)}: data.pkl is {info.file_size} bytes (at most {MAX_PICKLE_BYTES})")
        return self.handle.read(info)

    def storage_dtype(self, name: str) -> np.dtype:
        code = STORAGE_DTYPES[name]
        if code == "bfloat16":
            return np.dtype(f"{self.byteorder}u2")  # widened to float32 in ``tensor``
        return np.dtype(code).newbyteorder(self.byteorder) if np.dtype(code).itemsize > 1 else np.dtype(code)

    def storage(self, ref: _StorageRef) -> np.ndarray:
        if ref.key in self.decoded:
            return self.decoded[ref.key]
        info = self.entries.get(f"{self.prefix}data/{ref.key}")
        if info is None:
            raise UnsafeCheckpoint(f"{shown(self.path)}: storage {shown(ref.key, 40)} is missing from the archive")
        expected = ref.numel * ref.dtype.itemsize
        if info.file_size != expected:
            raise UnsafeCheckpoint(f"{shown(self.path)}: storage {shown(ref.key, 40)} holds {info.file_size} bytes, "
                                   f"its reference declares {expected}")
        self.total_bytes += expected
        if expected > self.max_tensor_bytes or self.total_bytes > MAX_ARCHIVE_BYTES:
            raise UnsafeCheckpoint(f"{shown(self.path)}: storage {shown(ref.key, 40)} of {expected} bytes exceeds the "
                                   f"limit ({self.max_tensor_bytes} per storage, {MAX_ARCHIVE_BYTES} in all)")
        raw = self.handle.read(info)
        self.decoded[ref.key] = np.frombuffer(raw, dtype=ref.dtype)
        return self.decoded[ref.key]

    def tensor(self, ref: _StorageRef, offset: object, size: object, stride: object) -> np.ndarray:
        if not (_int_tuple(size) and _int_tuple(stride) and len(size) == len(stride) and len(size) <= MAX_TENSOR_DIMS
                and isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0):
            raise UnsafeCheckpoint(f"{shown(self.path)}: a tensor with a malformed size, stride or offset")
        if any(extent < 0 for extent in size) or any(step < 0 for step in stride):
            raise UnsafeCheckpoint(f"{shown(self.path)}: a tensor with a negative size or stride")
        count = math.prod(size)
        if count:
            last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
            if last >= ref.numel:
                raise UnsafeCheckpoint(f"{shown(self.path)}: a tensor of size {tuple(size)} and stride {tuple(stride)} "
                                       f"at offset {offset} overruns its storage of {ref.numel} elements")
        storage = self.storage(ref)
        itemsize = storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(storage[offset:] if count else storage[:0], shape=tuple(size),
                                               strides=tuple(step * itemsize for step in stride), writeable=False)
        array = np.array(view, dtype=view.dtype.newbyteorder("="), copy=True)
        if ref.bfloat16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _int_tuple(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def load_torch_zip(path: str | Path, *, max_tensor_bytes: int = 2**31) -> Any:
    """The object saved by ``torch.save`` at ``path``, with every tensor as a numpy array; nothing is executed.

    Raises UnsafeCheckpoint (a CheckpointError, one line) for anything but tensors, storages, ordered dicts,
    plain containers and numbers, numpy scalars and dtypes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {shown(path)} does not exist")
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise UnsafeCheckpoint(f"{shown(path)} is {size} bytes (at most {MAX_ARCHIVE_BYTES} are read)")
    with open(path, "rb") as stream:
        head = stream.read(4)
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":
        raise UnsafeCheckpoint(f"{shown(path)} is a plain pickle (or torch's legacy format), not a torch zip "
                               "archive: refused, a pickle can run code when read")
    if head != b"PK\x03\x04":
        raise UnsafeCheckpoint(f"{shown(path)} is not a torch.save zip archive (it starts with {head!r})")
    try:
        with zipfile.ZipFile(path) as handle:
            archive = _Archive(handle, path, max_tensor_bytes)
            return _TorchZipUnpickler(archive.pickle_bytes(), archive).load()
    except UnsafeCheckpoint:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, IndexError,
            pickle.UnpicklingError, TypeError, AttributeError, RecursionError, MemoryError) as error:
        raise UnsafeCheckpoint(f"{shown(path)} is corrupt or truncated ({type(error).__name__}: {shown(error, 80)})") from None
