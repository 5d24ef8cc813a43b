"""Data sets for the iP-VAE toolkit: every loader returns torch tensors (float32 rows, int64 labels).

Public API (import from ``ipvae.data``):

- :func:`load_mnist`, :func:`load_fashion_mnist`: x [N, 784] in [0, 1], y [N].
- :func:`rotate_images`, :func:`rotated_mnist`, :func:`rotating_sequence`: rotated inputs.
- :func:`natural_patches`: whitened natural-image patches (sources and licenses: :mod:`ipvae.data.natural`).
- :func:`planted_dictionary_data` -> :class:`PlantedData`: the bars problem with its true dictionary.
- :data:`DATASETS`, :func:`get_dataset`, :func:`image_shape`: the one name -> loader dispatch.

Every entry of ``DATASETS`` has the signature ``(split, *, data_dir=None, seed=0, limit=None) ->
(x, y_or_None)`` and accepts the splits "train" and "test"; for natural_patches "test" means its
held-out "validation" images (also accepted by name), for bars "test" is a draw with another seed.
``limit`` keeps the first rows; ``data_dir`` applies to the IDX data sets only; ``seed`` to the
generated ones only (MNIST order is fixed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from torch import Tensor

from ipvae.errors import IpvaeError
from ipvae.data.bars import PlantedData, bars_dictionary, planted_dictionary_data
from ipvae.data.digits import FASHION_MNIST_DIR, MNIST_SIDE, load_fashion_mnist, load_mnist
from ipvae.data.idx import IdxFormatError, read_idx, write_idx
from ipvae.data.natural import (
    DEFAULT_PATCH_SIZE,
    VALIDATION_IMAGES,
    natural_image_names,
    natural_patches,
    split_image_names,
    whiten_image,
)
from ipvae.data.transforms import rotate_images, rotated_mnist, rotating_sequence

__all__ = [
    "DATASETS",
    "IdxFormatError",
    "PlantedData",
    "VALIDATION_IMAGES",
    "bars_dictionary",
    "get_dataset",
    "image_shape",
    "load_fashion_mnist",
    "load_mnist",
    "natural_image_names",
    "natural_patches",
    "planted_dictionary_data",
    "read_idx",
    "rotate_images",
    "rotated_mnist",
    "rotating_sequence",
    "split_image_names",
    "whiten_image",
    "write_idx",
]

Loader = Callable[..., "tuple[Tensor, Optional[Tensor]]"]
DATASET_SPLITS = ("train", "test")
PATCH_SPLIT_ALIASES = {"train": "train", "test": "validation", "validation": "validation"}
PATCHES_PER_SPLIT = {"train": 20000, "validation": 5000}
BARS_SIDE = 8
BARS_PER_SPLIT = {"train": 10000, "test": 2000}
BARS_TEST_SEED_OFFSET = 1_000_003  # test bars use seed + offset: never the train draw
SPLIT_SEED_STRIDE = 2  # natural patches: train uses 2*seed, validation 2*seed+1


def _limited(x: Tensor, y: Optional[Tensor], limit: Optional[int]) -> tuple[Tensor, Optional[Tensor]]:
    if limit is None:
        return x, y
    if limit < 1:
        raise IpvaeError(f"limit must be a positive number of samples, got {limit}.")
    return x[:limit], (None if y is None else y[:limit])


def _check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise IpvaeError(f"data set {name!r} has no split {split!r}; expected one of {', '.join(allowed)}.")


def _mnist(split: str, *, data_dir: str | Path | None = None, seed: int = 0, limit: int | None = None):
    _check_split("mnist", split, DATASET_SPLITS)
    return _limited(*load_mnist(split, data_dir=data_dir), limit)


def _fashion_mnist(split: str, *, data_dir: str | Path | None = None, seed: int = 0, limit: int | None = None):
    _check_split("fashion_mnist", split, DATASET_SPLITS)
    return _limited(*load_fashion_mnist(split, data_dir=FASHION_MNIST_DIR if data_dir is None else data_dir), limit)


def _natural_patches(split: str, *, data_dir: str | Path | None = None, seed: int = 0, limit: int | None = None):
    _check_split("natural_patches", split, tuple(PATCH_SPLIT_ALIASES))
    patch_split = PATCH_SPLIT_ALIASES[split]
    count = max(PATCHES_PER_SPLIT[patch_split], limit or 0)  # a limit takes a prefix of the default draw
    split_seed = SPLIT_SEED_STRIDE * seed + (patch_split == "validation")
    return _limited(natural_patches(patch_split, n_patches=count, seed=split_seed), None, limit)


def _bars(split: str, *, data_dir: str | Path | None = None, seed: int = 0, limit: int | None = None):
    _check_split("bars", split, DATASET_SPLITS)
    count = max(BARS_PER_SPLIT[split], limit or 0)  # a limit takes a prefix of the default draw
    draw_seed = seed if split == "train" else seed + BARS_TEST_SEED_OFFSET
    return _limited(planted_dictionary_data(count, side=BARS_SIDE, seed=draw_seed).x, None, limit)


DATASETS: dict[str, Loader] = {
    "mnist": _mnist,
    "fashion_mnist": _fashion_mnist,
    "natural_patches": _natural_patches,
    "bars": _bars,
}

_IMAGE_SHAPES: dict[str, tuple[int, int]] = {
    "mnist": (MNIST_SIDE, MNIST_SIDE),
    "fashion_mnist": (MNIST_SIDE, MNIST_SIDE),
    "natural_patches": (DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE),
    "bars": (BARS_SIDE, BARS_SIDE),
}


def _unknown(name: str) -> IpvaeError:
    return IpvaeError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}.")


def get_dataset(name: str, split: str, **kw) -> tuple[Tensor, Optional[Tensor]]:
    """x [N, M] float32 and labels [N] int64 (or None) of a named data set's split."""
    if name not in DATASETS:
        raise _unknown(name)
    return DATASETS[name](split, **kw)


def image_shape(name: str) -> tuple[int, int]:
    """(H, W) of one sample of a named data set, for plotting rows as images."""
    if name not in _IMAGE_SHAPES:
        raise _unknown(name)
    return _IMAGE_SHAPES[name]
