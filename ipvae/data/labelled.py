"""A user's own labelled 28x28 set, for the novel-data experiment (``ipvae bench novel --dataset NAME=PATH``).

Either a ``.npy`` array [N, 28, 28] or [N, 784] (values in [0, 1], or 0..255 which is rescaled) with
optional labels in ``NAME_labels.npy`` beside it, or a folder of 28x28 images (labels from the names of
sub-folders when there are any). Files are read by ``ipvae.images``, the one image reader (an image as
grayscale in [0, 1], alpha over white; arrays without pickles); the images are used as they are, not
re-prepared like MNIST, since the set is meant to be MNIST-like already.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ipvae.errors import IpvaeError
from ipvae.images import IMAGE_SUFFIXES, load_array_file, read_grayscale

SIDE = 28
BYTE_MAX = 255.0
USER_SPLIT_FRACTION = 0.5  # labelled user sets: the first half (in a seeded order) fits the probe


def load_user_images(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A user's 28x28 grayscale set: x [N, 784] float32 in [0, 1] and labels [N] or None."""
    path = Path(path)
    if path.is_dir():
        images, names = _image_folder(path)
    elif path.suffix == ".npy" and path.is_file():
        images = load_array_file(path, SIDE * SIDE).x  # [N, 784] as stored
        labels_path = path.with_name(f"{path.stem}_labels.npy")
        names = np.load(labels_path, allow_pickle=False) if labels_path.is_file() else None
    else:
        raise IpvaeError(f"{path}: expected a .npy file or a folder of 28x28 images")
    if images.ndim != 2 or images.shape[0] == 0:
        raise IpvaeError(f"{path}: expected images [N, 28, 28] or [N, 784], got shape {images.shape}")
    if not np.isfinite(images).all():
        raise IpvaeError(f"{path}: the images contain NaN or Inf")
    if images.min() < 0 or images.max() > BYTE_MAX:
        raise IpvaeError(f"{path}: pixel values must lie in [0, 1] or [0, 255]")
    if images.max() > 1.0:
        images = images / BYTE_MAX
    labels = None
    if names is not None:
        if len(names) != len(images):
            raise IpvaeError(f"{path}: {len(names)} labels for {len(images)} images")
        _, codes = np.unique(np.asarray(names), return_inverse=True)
        labels = torch.from_numpy(codes.astype(np.int64))
    return torch.from_numpy(images.astype(np.float32)), labels


def _image_folder(folder: Path) -> tuple[np.ndarray, list[str] | None]:
    """[N, 784] from the folder's images (sub-folders included, sorted), and their sub-folder names or None."""
    files = sorted(file for file in folder.rglob("*") if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise IpvaeError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for file in files:
        image = read_grayscale(file)  # [H, W] in [0, 1]
        if image.shape != (SIDE, SIDE):
            raise IpvaeError(f"{file}: expected a 28x28 image, got {image.shape}")
        images.append(image.reshape(-1))
    labelled = any(file.parent != folder for file in files)
    return np.stack(images), ([str(file.parent.relative_to(folder)) for file in files] if labelled else None)


def split_labelled(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple:
    """A seeded half/half split of a labelled user set: (x_train, y_train, x_test, y_test)."""
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))  # [N]
    cut = int(round(USER_SPLIT_FRACTION * x.shape[0]))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
