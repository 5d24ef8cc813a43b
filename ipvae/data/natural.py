"""Whitened natural-image patches (the sparse-coding benchmark of Olshausen & Field, 1996).

Sources (all bundled inside installed wheels, nothing is downloaded):

=====================  =====================  ==============================================
name                   package                license (as stated by the package)
=====================  =====================  ==============================================
camera                 scikit-image 0.24      CC0 (photographer Lav Varshney)
astronaut              scikit-image 0.24      public domain (NASA)
coffee                 scikit-image 0.24      CC0 (photographer Rachel Michetti)
chelsea                scikit-image 0.24      CC0 (photographer Stefan van der Walt)
rocket                 scikit-image 0.24      public domain (SpaceX)
grass                  scikit-image 0.24      CC0
gravel                 scikit-image 0.24      CC0 (CC0Textures)
brick                  scikit-image 0.24      CC0 (CC0Textures)
clock                  scikit-image 0.24      public domain (photographer Stefan van der Walt)
coins                  scikit-image 0.24      no known copyright restrictions
china                  scikit-learn           CC BY 2.0 (Flickr, via load_sample_image)
flower                 scikit-learn           CC BY 2.0 (Flickr, via load_sample_image)
aero, ascent           PyWavelets (optional)  as distributed with PyWavelets; used only if
                                              ``pywt`` imports, skipped silently otherwise
=====================  =====================  ==============================================

Left out on purpose: ``moon`` (no license stated), ``hubble_deep_field`` and ``retina`` (mostly
empty background), ``text``/``page`` (documents), microscopy and synthetic images.

Validation split: the images in :data:`VALIDATION_IMAGES` (chelsea, gravel, flower); every other
available image is train. Pipeline per image: grayscale float in [0, 1], mean removed, Olshausen-Field
whitening in the 2-D Fourier domain with the amplitude filter ``|f| * exp(-(|f|/f0)^4)``
(f in cycles/pixel from ``fftfreq`` grids, f0 = 0.4 * Nyquist), rescaled to unit variance. Patches are
cropped at random positions (a seeded numpy Generator; a border margin skips the wrap-around
artefacts of the FFT), each patch's mean is subtracted, a patch whose std is below MIN_PATCH_CONTRAST of
its whitened image's is drawn again (near-blank sky and background), and all patches are divided by one
global std measured on a fixed reference sample of train patches, so train patches have std ~ 1.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

from ipvae.errors import IpvaeError

SKIMAGE_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "grass", "gravel", "brick", "clock", "coins")
SKLEARN_IMAGES = {"china": "china.jpg", "flower": "flower.jpg"}
PYWAVELETS_IMAGES = ("aero", "ascent")
VALIDATION_IMAGES = ("chelsea", "gravel", "flower")
PATCH_SPLITS = ("train", "validation")

NYQUIST = 0.5  # cycles per pixel
WHITEN_CUTOFF_FRACTION = 0.4  # f0 = 0.4 * Nyquist
WHITEN_CUTOFF = WHITEN_CUTOFF_FRACTION * NYQUIST  # cycles per pixel
WHITEN_ROLLOFF_POWER = 4  # exp(-(f/f0)^4)
BORDER_MARGIN = 8  # pixels of each whitened image never used for patches (FFT wrap-around)
STD_REFERENCE_PATCHES = 20000
STD_REFERENCE_SEED = 20240601  # fixed: the global std must not depend on the caller's seed
DEFAULT_PATCH_SIZE = 16
DEFAULT_N_PATCHES = 20000
# A patch of the named set is kept when its std is at least this fraction of its whitened image's (1): about 30 % of
# the patches of these photographs (sky, blurred background, JPEG-flat areas; the low mode of the bimodal patch
# std, which has its valley near 0.15) are near-blank, where R^2 per patch is ill-conditioned and any spike is
# noise. The paper's van Hateren patches have no such share (its dense early codes, .38 zeros at t = 16 with
# R^2 .72, would score far below 0 on them). benchmarks/own_data.py measures the model with and without it.
MIN_PATCH_CONTRAST = 0.15
MAX_DRAW_ROUNDS = 50  # rejection sampling: rounds of draws before a set with too few contrasted patches is refused


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    image = getattr(skimage.data, name)()
    return img_as_float(rgb2gray(image) if image.ndim == 3 else image)


def _load_sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    return img_as_float(rgb2gray(load_sample_image(SKLEARN_IMAGES[name])))


def _load_pywavelets(name: str) -> np.ndarray:
    import pywt.data

    image = np.asarray(getattr(pywt.data, name)(), dtype=np.float64)
    return (image - image.min()) / max(float(np.ptp(image)), np.finfo(np.float64).eps)


@functools.lru_cache(maxsize=1)
def natural_image_names() -> tuple[str, ...]:
    """The names of the photographs available here (PyWavelets' only when it is installed)."""
    names = list(SKIMAGE_IMAGES) + list(SKLEARN_IMAGES)
    try:
        import pywt.data  # noqa: F401 - optional
    except ImportError:
        pass
    else:
        names += list(PYWAVELETS_IMAGES)
    return tuple(names)


def split_image_names(split: str) -> tuple[str, ...]:
    """The source images of a patch split (train and validation never share an image)."""
    if split not in PATCH_SPLITS:
        raise IpvaeError(f"unknown natural_patches split {split!r}; expected one of {', '.join(PATCH_SPLITS)}.")
    is_validation = split == "validation"
    return tuple(name for name in natural_image_names() if (name in VALIDATION_IMAGES) == is_validation)


def load_gray_image(name: str) -> np.ndarray:
    """One source photograph as a float64 grayscale array [H, W] in [0, 1]."""
    if name in SKIMAGE_IMAGES:
        return _load_skimage(name)
    if name in SKLEARN_IMAGES:
        return _load_sklearn(name)
    if name in PYWAVELETS_IMAGES:
        return _load_pywavelets(name)
    raise IpvaeError(f"unknown natural image {name!r}; known: {', '.join(natural_image_names())}.")


def whitening_filter(height: int, width: int) -> np.ndarray:
    """The Olshausen-Field filter on an rfft2 grid [H, W//2+1]: |f| * exp(-(|f|/f0)^4)."""
    fy = np.fft.fftfreq(height)[:, None]  # [H, 1] cycles/pixel, DC at index 0 (no fftshift)
    fx = np.fft.rfftfreq(width)[None, :]  # [1, W//2+1]
    radius = np.sqrt(fy**2 + fx**2)  # [H, W//2+1]
    return radius * np.exp(-((radius / WHITEN_CUTOFF) ** WHITEN_ROLLOFF_POWER))  # [H, W//2+1]


def whiten_image(image: np.ndarray) -> np.ndarray:
    """Whiten one grayscale image [H, W]: mean removed, filtered in Fourier space, unit variance."""
    centred = image - image.mean()  # [H, W]
    spectrum = np.fft.rfft2(centred)  # [H, W//2+1]
    whitened = np.fft.irfft2(spectrum * whitening_filter(*image.shape), s=image.shape)  # [H, W]
    return whitened / whitened.std()


@functools.lru_cache(maxsize=None)
def _whitened(name: str) -> np.ndarray:
    whitened = whiten_image(load_gray_image(name)).astype(np.float32)  # [H, W]
    whitened.setflags(write=False)
    return whitened


def _sample_patches(names: tuple[str, ...], n_patches: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """n random patches [n, p*p] (float32, each with its mean removed) from the whitened images."""
    return sample_patches([_whitened(name) for name in names], n_patches, patch_size, rng,
                          f"the natural images ({', '.join(names)})", min_contrast=MIN_PATCH_CONTRAST)


def sample_patches(images: list[np.ndarray], n_patches: int, patch_size: int, rng: np.random.Generator,
                   what: str = "the images", min_contrast: float = 0.0) -> np.ndarray:
    """n random patches [n, p*p] (float32, each with its mean removed) from whitened images [H_i, W_i] (the
    border margin skipped; images drawn in proportion to their usable area). ``min_contrast`` > 0: a patch whose
    std is below it (in units of the whitened image's std, 1) is rejected and another drawn in its place."""
    shapes = np.array([image.shape for image in images])  # [I, 2]
    spans = shapes - 2 * BORDER_MARGIN - patch_size + 1  # [I, 2] valid top-left positions per axis
    if np.any(spans < 1):
        raise IpvaeError(f"patch_size {patch_size} is too large for {what}: each image needs at least "
                         f"{patch_size + 2 * BORDER_MARGIN} pixels a side (the whitening's border margin).")
    kept, n_kept = [], 0
    for _ in range(MAX_DRAW_ROUNDS):
        drawn = _draw_patches(images, spans, n_patches - n_kept, patch_size, rng)  # [d, p*p]
        if min_contrast > 0:
            drawn = drawn[drawn.std(axis=1) >= min_contrast]  # [d', p*p] (the mean is already removed)
        kept.append(drawn)
        n_kept += drawn.shape[0]
        if n_kept == n_patches:
            return np.concatenate(kept)  # [n, p*p]
    raise IpvaeError(f"too few patches of {what} have contrast (std >= {min_contrast} of the whitened image's): "
                     f"{n_kept} of {n_patches} after {MAX_DRAW_ROUNDS} rounds of draws")


def _draw_patches(images: list[np.ndarray], spans: np.ndarray, n_patches: int, patch_size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """n patches [n, p*p] at uniform positions inside the margins (``spans`` [I, 2]: top-left positions per axis)."""
    weights = spans.prod(axis=1) / spans.prod(axis=1).sum()  # [I] sample images in proportion to their area
    which = rng.choice(len(images), size=n_patches, p=weights)  # [n]
    offsets = BORDER_MARGIN + np.floor(rng.random((n_patches, 2)) * spans[which]).astype(np.int64)  # [n, 2]
    patches = np.empty((n_patches, patch_size, patch_size), dtype=np.float32)  # [n, p, p]
    for index, image in enumerate(images):
        chosen = np.flatnonzero(which == index)  # [n_i]
        windows = sliding_window_view(image, (patch_size, patch_size))  # [H-p+1, W-p+1, p, p] (a view)
        patches[chosen] = windows[offsets[chosen, 0], offsets[chosen, 1]]  # [n_i, p, p]
    patches = patches.reshape(n_patches, patch_size * patch_size)  # [n, p*p]
    return patches - patches.mean(axis=1, keepdims=True)  # [n, p*p]


def whitened_tiles(gray: np.ndarray, patch_size: int, patch_std: float, source: str = "image") -> np.ndarray:
    """A new image prepared as training patches were: whitened (whiten_image), cut into non-overlapping
    patch_size tiles inside the border margin, each tile's mean removed, divided by ``patch_std`` [n, p*p]."""
    usable = np.array(gray.shape) - 2 * BORDER_MARGIN  # [2]
    if np.any(usable < patch_size):
        raise IpvaeError(f"{source}: {gray.shape[0]}x{gray.shape[1]} is too small for {patch_size}x{patch_size} "
                         f"patches (at least {patch_size + 2 * BORDER_MARGIN} pixels a side)")
    whitened = whiten_image(gray)[BORDER_MARGIN:-BORDER_MARGIN, BORDER_MARGIN:-BORDER_MARGIN]  # [H', W']
    rows, cols = usable // patch_size
    tiles = whitened[: rows * patch_size, : cols * patch_size].reshape(rows, patch_size, cols, patch_size)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(rows * cols, patch_size * patch_size)  # [n, p*p]
    return (tiles - tiles.mean(axis=1, keepdims=True)) / patch_std  # [n, p*p]


@functools.lru_cache(maxsize=None)
def train_patch_std(patch_size: int = DEFAULT_PATCH_SIZE) -> float:
    """The global std of mean-removed train patches (fixed reference sample): the z-scoring divisor."""
    rng = np.random.default_rng(STD_REFERENCE_SEED)
    reference = _sample_patches(split_image_names("train"), STD_REFERENCE_PATCHES, patch_size, rng)  # [R, p*p]
    return float(reference.std(dtype=np.float64))


def natural_patches(
    split: str = "train", n_patches: int = DEFAULT_N_PATCHES, patch_size: int = DEFAULT_PATCH_SIZE, seed: int = 0
) -> Tensor:
    """Whitened, z-scored natural-image patches [n_patches, patch_size**2] float32 (see module doc)."""
    names = split_image_names(split)
    if n_patches < 1 or patch_size < 1:
        raise IpvaeError(f"natural_patches needs n_patches >= 1 and patch_size >= 1, got {n_patches} and {patch_size}.")
    rng = np.random.default_rng(seed)
    patches = _sample_patches(names, n_patches, patch_size, rng)  # [n, p*p]
    return torch.from_numpy(patches / np.float32(train_patch_std(patch_size)))  # [n, p*p]
