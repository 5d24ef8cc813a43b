"""Data sets for the iP-VAE toolkit: every loader returns torch tensors (float32 rows, int64 labels).

Public API (import from ``ipvae.data``):

- :func:`load_mnist`, :func:`load_fashion_mnist`: x [N, 784] in [0, 1], y [N].
- :func:`rotate_images`, :func:`rotated_mnist`, :func:`rotating_sequence`: rotated inputs.
- :func:`natural_patches`: whitened natural-image patches (sources and licenses: :mod:`ipvae.data.natural`).
- :func:`planted_dictionary_data` -> :class:`PlantedData`: the bars problem with its true dictionary.
- :data:`DATASETS`, :func:`get_dataset`, :func:`image_shape`: the one name -> loader dispatch.
- :func:`run_split`, :func:`run_preparation`: a run's training / validation rows and how its inputs are
  prepared, for a named set or the user's own images (:mod:`ipvae.data.user_sets`).

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
    "run_description",
    "run_preparation",
    "saved_preparation",
    "run_split",
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


def _user_set(train):
    """The user set a TrainConfig names (a file source), read once per process and settings."""
    from ipvae.data.user_sets import load_user_set

    key = (train.data, train.prepare, train.image_shape, train.patch_size, train.train_limit if train.patch_size else None,
           train.val_fraction, train.val_data, train.seed)
    if key not in _USER_SETS:
        _USER_SETS.clear()  # one set at a time: they can be large
        _USER_SETS[key] = load_user_set(
            train.data, prepare=train.prepare, image_shape=train.image_shape, patch_size=train.patch_size,
            n_patches=train.train_limit if train.patch_size else None, val_fraction=train.val_fraction,
            val_data=train.val_data, seed=train.seed)
    return _USER_SETS[key]


_USER_SETS: dict = {}


def run_split(train, split: str, limit: int | None = None) -> Tensor:
    """The rows [N, M] float32 of a run's data (``train``: its TrainConfig): split "train" or "test" ("test"
    is a user set's validation images, or a named set's test split)."""
    import torch

    from ipvae.images import is_file_source

    _check_split("the run's data", split, DATASET_SPLITS)
    if split == "train" and limit is None and not train.patch_size:
        limit = train.train_limit
    if not is_file_source(train.data):
        x, _ = get_dataset(train.data, split, data_dir=train.data_dir, seed=train.seed, limit=limit)
        return x.reshape(x.shape[0], -1).float()
    loaded = _user_set(train)
    rows = loaded.train if split == "train" else loaded.validation
    return torch.from_numpy(rows[:limit])


def run_description(train) -> str:
    """One line saying what a run's data is and how it was prepared."""
    from ipvae.images import is_file_source

    return _user_set(train).description if is_file_source(train.data) else f"the {train.data} training set"


def run_preparation(train):
    """How the inputs of a run were prepared (ipvae.images.InputPreparation): a user set's own (its patch std
    measured on its training patches), MNIST-style for the digit sets, whitened patches for natural_patches."""
    from ipvae.data.natural import train_patch_std
    from ipvae.images import InputPreparation, is_file_source

    if is_file_source(train.data):
        return _user_set(train).preparation
    shape = image_shape(train.data)
    if train.data == "natural_patches":
        return InputPreparation(shape, "patches", patch_std=train_patch_std(shape[0]))
    return InputPreparation(shape, "mnist" if train.data in ("mnist", "fashion_mnist") else "plain")


INPUT_FILE = "input.json"  # in a run directory: the run's InputPreparation (written by the trainer)


def saved_preparation(run_dir: str | Path, train):
    """A run's InputPreparation: its input.json, else (runs trained before it was written) a named set's;
    None for a user set without one."""
    from ipvae.images import InputPreparation, is_file_source
    from ipvae.limits import read_json_file

    path = Path(run_dir) / INPUT_FILE
    if path.is_file():
        try:
            return InputPreparation.from_dict(read_json_file(path))
        except (OSError, ValueError) as error:
            raise IpvaeError(f"{path}: not a readable input preparation ({type(error).__name__})") from None
    return None if is_file_source(train.data) else run_preparation(train)
