"""A user's own images as a training set: a folder or glob of PNG/JPEG files, or a .npy/.npz array.

One reader (:mod:`ipvae.images`) serves training and ``ipvae run --data``: the images are read there and
prepared by the run's :class:`~ipvae.images.InputPreparation`, which training chooses here and saves with
the run, so new images are prepared the same way later.

- ``plain`` (the default): grayscale (colour is converted, and the summary says how many), scaled to
  [0, 1], kept at their own size H x W (any H, W; every image of a set must have the same size);
  arrays [N, H, W] (or [N, M] with ``image_shape``) are used as stored.
- ``mnist``: the MNIST preparation of ipvae.images.prepare_digit (28 x 28).
- patches (``patch_size`` P): every image whitened as the natural-patch set is (ipvae.data.natural), P x P
  patches cut at random positions, each patch's mean removed, all divided by the training patches' std,
  which is saved in the run's preparation.

A validation split is carved off the images before any patch is cut (``val_fraction``, a permutation drawn
from the run's seed), or given as a second source (``val_data``) prepared the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipvae.data.natural import DEFAULT_N_PATCHES, sample_patches, whiten_image
from ipvae.errors import IpvaeError
from ipvae.images import (
    MNIST_SIDE,
    InputFileError,
    InputPreparation,
    image_paths,
    is_array_source,
    prepare_digit,
    read_array_file,
    read_image,
)

VALIDATION_SEED_OFFSET = 104_729  # the validation permutation's seed: seed + offset, never an epoch order's
PATCH_VALIDATION_SEED_OFFSET = 1  # validation patches are drawn with seed + 1, training patches with seed
PATCH_VALIDATION_SHARE = 4  # validation patches: one for every this many training patches
MAX_SET_PIXELS = 2_000_000_000  # float32 rows of a user set: 8 GB, refused before stacking


@dataclass(frozen=True, eq=False)
class UserSet:
    """train [N, M] and validation [V, M] float32 rows, how they were prepared, and one line saying so."""

    train: np.ndarray
    validation: np.ndarray
    preparation: InputPreparation
    description: str


@dataclass(frozen=True, eq=False)
class _Images:
    images: list  # grayscale [H, W] float64 each
    names: list
    coloured: int
    where: str
    from_array: bool


def load_user_set(data: str, *, prepare: str = "plain", image_shape: tuple[int, int] | None = None,
                  patch_size: int | None = None, n_patches: int | None = None, val_fraction: float = 0.1,
                  val_data: str | None = None, seed: int = 0) -> UserSet:
    """The training and validation rows of a user's images (see the module doc); problems are one line."""
    if prepare not in ("plain", "mnist"):
        raise IpvaeError(f"unknown preparation {prepare!r}; expected plain or mnist")
    if patch_size is not None and prepare != "plain":
        raise IpvaeError("--patches cuts whitened patches from plain grayscale images: it does not go with --prepare mnist")
    read = _read(data, image_shape)
    if val_data is not None:
        train_images, validation_images = read.images, _read(val_data, image_shape).images
        carved = f"validation: {len(validation_images)} image(s) from {val_data}"
    else:
        train_images, validation_images = _carve(read.images, val_fraction, seed)
        carved = (f"validation: {len(validation_images)} carved off (fraction {val_fraction:g}, seed {seed})"
                  if validation_images else "no validation split")
    if patch_size is not None:
        train, validation, preparation = _patches(train_images, validation_images, patch_size, n_patches, seed)
    elif prepare == "mnist":
        preparation = InputPreparation((MNIST_SIDE, MNIST_SIDE), "mnist")
        train, validation = (_digits(images, names) for images, names in
                             ((train_images, read.names), (validation_images, read.names)))
    else:
        shape = _common_shape(read.images + validation_images, read.names)
        preparation = InputPreparation(shape, "plain")
        train, validation = (_plain(images, read.from_array) for images in (train_images, validation_images))
    converted = f", {read.coloured} colour image(s) converted to grey" if read.coloured else ""
    how = "array values used as stored" if read.from_array and preparation.mode == "plain" else preparation.words()
    description = (f"{len(read.images)} image(s) from {read.where}{converted} -> {train.shape[0]} training input(s) "
                   f"of {preparation.shape[0]}x{preparation.shape[1]} ({how}); {carved}")
    return UserSet(train=train, validation=validation, preparation=preparation, description=description)


def _read(data: str, image_shape: tuple[int, int] | None) -> _Images:
    if is_array_source(data):
        return _read_array(Path(data), image_shape)
    paths = image_paths(data)
    _check_pixels(len(paths), 1)
    read = [read_image(path) for path in paths]
    images = [gray for gray, _ in read]
    if image_shape is not None and images[0].shape != tuple(image_shape):
        raise InputFileError(f"{paths[0]} is {images[0].shape[0]}x{images[0].shape[1]}, but --image-shape says "
                             f"{image_shape[0]}x{image_shape[1]} (it is for [N, M] arrays)")
    parents = {path.parent for path in paths}
    where = str(paths[0]) if len(paths) == 1 else (f"{parents.pop()}/" if len(parents) == 1 else "several folders")
    return _Images(images, [str(path) for path in paths], sum(colour for _, colour in read), where, False)


def _read_array(path: Path, image_shape: tuple[int, int] | None) -> _Images:
    array = read_array_file(path)
    if array.ndim == 2:
        height, width = image_shape if image_shape is not None else (_square(array.shape[1], path),) * 2
        if height * width != array.shape[1]:
            raise InputFileError(f"{path}: rows of {array.shape[1]} pixels are not --image-shape {height}x{width}")
        array = array.reshape(array.shape[0], height, width)
    elif array.ndim != 3:
        raise InputFileError(f"{path}: training takes images [N, H, W] or [N, M], got shape {list(array.shape)}")
    elif image_shape is not None and array.shape[1:] != tuple(image_shape):
        raise InputFileError(f"{path}: images are {array.shape[1]}x{array.shape[2]}, --image-shape says "
                             f"{image_shape[0]}x{image_shape[1]}")
    if array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] < 1:
        raise InputFileError(f"{path}: holds no images (shape {list(array.shape)})")
    _check_pixels(array.shape[0], array.shape[1] * array.shape[2])
    images = [np.asarray(image, dtype=np.float64) for image in array]
    if not all(np.isfinite(image).all() for image in images):
        raise InputFileError(f"{path}: the images contain NaN or Inf")
    names = [f"{path}[{index}]" for index in range(len(images))]
    return _Images(images, names, 0, str(path), True)


def _square(n_pixels: int, path: Path) -> int:
    side = int(round(np.sqrt(n_pixels)))
    if side * side != n_pixels:
        raise InputFileError(f"{path}: rows of {n_pixels} pixels are not a square image; give --image-shape H W")
    return side


def _check_pixels(n_images: int, n_pixels: int) -> None:
    if n_images * n_pixels > MAX_SET_PIXELS:
        raise InputFileError(f"{n_images} images of {n_pixels} pixels exceed the {MAX_SET_PIXELS:,} pixels a set may hold")


def _carve(images: list, fraction: float, seed: int) -> tuple[list, list]:
    """(training images, validation images): round(fraction * N) of them (at least one when fraction > 0),
    chosen by a permutation drawn from the seed; at least one image stays for training."""
    if not 0.0 <= fraction < 1.0:
        raise IpvaeError(f"--val-fraction must be in [0, 1), got {fraction}")
    n_validation = 0 if fraction == 0 else max(1, round(fraction * len(images)))
    if n_validation and n_validation >= len(images):
        raise InputFileError(f"{len(images)} image(s) leave none for training after a validation fraction of "
                             f"{fraction:g}; add images, give --val-data or --val-fraction 0")
    order = np.random.default_rng(seed + VALIDATION_SEED_OFFSET).permutation(len(images))  # [N]
    held = set(order[:n_validation].tolist())
    return ([image for index, image in enumerate(images) if index not in held],
            [image for index, image in enumerate(images) if index in held])


def _common_shape(images: list, names: list) -> tuple[int, int]:
    first = images[0].shape
    for index, image in enumerate(images):
        if image.shape != first:
            other = names[index] if index < len(names) else "a validation image"
            raise InputFileError(f"images differ in size: {names[0]} is {first[0]}x{first[1]}, {other} is "
                                 f"{image.shape[0]}x{image.shape[1]}; resize them to one size or use --patches P")
    return first


def _rows(images: list, width: int) -> np.ndarray:
    return np.stack(images).reshape(len(images), -1).astype(np.float32) if images else np.zeros((0, width), np.float32)


def _plain(images: list, from_array: bool) -> np.ndarray:
    """Rows [N, H*W]: image files scaled to [0, 1] image by image (ipvae.images.prepare_plain), arrays as stored."""
    from ipvae.images import prepare_plain

    width = images[0].size if images else 0
    return _rows(images if from_array else [prepare_plain(image, image.shape) for image in images], width)


def _digits(images: list, names: list) -> np.ndarray:
    return _rows([prepare_digit(image, name)[0] for image, name in zip(images, names)], MNIST_SIDE * MNIST_SIDE)


def _whiten(images: list) -> list:
    for image in images:
        if not np.ptp(image) > 0:
            raise InputFileError("a blank (constant) image cannot be whitened; remove it from the set")
    return [whiten_image(image).astype(np.float32) for image in images]


def _patches(train_images: list, validation_images: list, patch_size: int, n_patches: int | None,
             seed: int) -> tuple[np.ndarray, np.ndarray, InputPreparation]:
    """Whitened patches (ipvae.data.natural.sample_patches), divided by the training patches' std."""
    count = n_patches or DEFAULT_N_PATCHES
    train = sample_patches(_whiten(train_images), count, patch_size, np.random.default_rng(seed))  # [n, P*P]
    std = float(train.std(dtype=np.float64))
    if not std > 0:
        raise InputFileError("the training patches are constant: nothing to learn")
    validation = (sample_patches(_whiten(validation_images), max(1, count // PATCH_VALIDATION_SHARE), patch_size,
                                 np.random.default_rng(seed + PATCH_VALIDATION_SEED_OFFSET))
                  if validation_images else np.zeros((0, patch_size * patch_size), np.float32))
    preparation = InputPreparation((patch_size, patch_size), "patches", patch_std=std)
    return (train / np.float32(std)).astype(np.float32), (validation / np.float32(std)).astype(np.float32), preparation
