"""A user's own inputs for `ipvae run` / `ipvae eval --data`: image files, folders, globs, .npy and .npz.

Images (PNG, JPEG, ... of any size) are brought to the model's input the way MNIST was prepared
(LeCun et al.; http://yann.lecun.com/exdb/mnist/): grayscale, ink bright on a dark background
(inverted if the background is light, the background level removed), cropped to the content, resized
to fit a 20x20 box keeping the aspect ratio (anti-aliased), placed in a 28x28 canvas with its centre of
mass at the centre, scaled to [0, 1]. A model whose input is not 28x28 (e.g. natural-image patches)
gets the plain version: grayscale, resized to its square size, scaled to [0, 1], and the description
says that the digit preparation did not apply.

Arrays: ``[N, M]`` or ``[N, H, W]`` images; ``[N, F, M]`` or ``[N, F, H, W]`` frame sequences (moving
input, one frame per step). A ``.npz`` holds one array, or names it ``x``, ``images`` or ``frames``.

Every loader returns :class:`LoadedInputs` with one line saying what was done; every problem is one
:class:`~ipvae.errors.IpvaeError` line.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipvae.errors import IpvaeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_ARRAY_NAMES = ("x", "images", "frames")
GLOB_CHARACTERS = "*?["

MNIST_SIDE = 28  # the canvas
MNIST_BOX = 20  # the digit is resized to fit this box, aspect ratio kept
# Where MNIST puts the centre of mass (row, column index): its 10,000 test digits average (14.0, 14.0).
MNIST_CENTRE = MNIST_SIDE / 2.0
GRAY_LEVELS = 255.0
LIGHT_BACKGROUND = 0.5  # border median above this: dark ink on light paper, inverted
CONTENT_THRESHOLD = 0.2  # after background removal, pixels above this fraction of the peak are content
MAX_IMAGE_PIXELS = 50_000_000  # refuse decompression bombs (Pillow's own warning limit is 89M)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "F")  # Pillow modes without colour


class InputFileError(IpvaeError):
    """An input file, folder or glob that cannot be read or does not fit the model."""


@dataclass(frozen=True, eq=False)
class LoadedInputs:
    """x: float64 [N, M] (images) or [N, F, M] (frame sequences); description: one line for the user."""

    x: np.ndarray
    description: str
    names: tuple[str, ...] = ()


def is_file_source(data: str) -> bool:
    """True for an image or array file, a folder, or a glob pattern; False for a data set name."""
    text = str(data)
    return (
        Path(text).suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES
        or any(character in text for character in GLOB_CHARACTERS)
        or Path(text).is_dir()
        or "/" in text
    )


def load_file_inputs(data: str, n_inputs: int, preparation: "InputPreparation | None" = None) -> LoadedInputs:
    """Inputs for a model with ``n_inputs`` pixels from an image file, folder, glob, .npy or .npz file;
    ``preparation``: the run's (see load_images); arrays are used as stored."""
    if is_array_source(data):
        return load_array_file(Path(data), n_inputs)
    paths = image_paths(data)
    return load_images(paths, n_inputs, preparation)


def is_array_source(data: str) -> bool:
    """True for a .npy / .npz file name (not a glob)."""
    return Path(data).suffix.lower() in ARRAY_SUFFIXES and not any(character in data for character in GLOB_CHARACTERS)


def image_paths(data: str) -> list[Path]:
    """The image files of a file name, a folder (its image files, sorted) or a glob (sorted matches)."""
    path = Path(data)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    if any(character in data for character in GLOB_CHARACTERS):
        paths = sorted(Path(p) for p in glob.glob(data) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"no image files match {data}")
        return paths
    if not path.is_file():
        raise InputFileError(f"{path}: no such file or folder (nor a data set name)")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputFileError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}) or array (.npy, .npz) file")
    return [path]


def read_grayscale(path: Path) -> np.ndarray:
    """The image as float64 [H, W] in [0, 1] (any mode: RGB, palette, 16-bit, alpha over white)."""
    return read_image(path)[0]


def read_image(path: Path) -> tuple[np.ndarray, bool]:
    """(the image as float64 [H, W] in [0, 1], whether it was in colour and converted to grey: ITU-R 601 luma)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputFileError(f"{path}: {image.width}x{image.height} pixels is too large an image")
            colour = image.mode not in GRAY_MODES
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            if image.mode in ("I", "I;16", "I;16B", "F"):
                gray = np.asarray(image, dtype=np.float64)
                peak = gray.max()
                return (gray / peak if peak > 0 else gray), False
            return np.asarray(image.convert("L"), dtype=np.float64) / GRAY_LEVELS, colour
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise InputFileError(f"{path}: not a readable image ({type(error).__name__})") from None


def ink_on_dark(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """(ink bright on a zero background, whether it was inverted): invert a light background, remove its level."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    inverted = bool(np.median(border) > LIGHT_BACKGROUND)
    ink = 1.0 - gray if inverted else gray
    background = float(np.median(1.0 - border if inverted else border))
    return np.clip(ink - background, 0.0, None), inverted


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), Image.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)


def prepare_digit(gray: np.ndarray, source: str = "image") -> tuple[np.ndarray, bool]:
    """(MNIST-style [28, 28] in [0, 1], whether it was inverted) from a grayscale [H, W] in [0, 1]."""
    ink, inverted = ink_on_dark(gray)
    peak = ink.max()
    if peak <= 0:
        raise InputFileError(f"{source}: blank image (no content against its background)")
    rows = np.flatnonzero((ink > CONTENT_THRESHOLD * peak).any(axis=1))
    cols = np.flatnonzero((ink > CONTENT_THRESHOLD * peak).any(axis=0))
    content = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # [h, w]
    scale = MNIST_BOX / max(content.shape)
    height = max(1, round(content.shape[0] * scale))
    width = max(1, round(content.shape[1] * scale))
    boxed = _resize(content, height, width)  # [h', w'], max side 20
    total = boxed.sum()
    if total <= 0:
        raise InputFileError(f"{source}: blank image after resizing")
    row_mass = (boxed.sum(axis=1) * np.arange(height)).sum() / total
    col_mass = (boxed.sum(axis=0) * np.arange(width)).sum() / total
    centre = MNIST_CENTRE
    top = int(np.clip(round(centre - row_mass), 0, MNIST_SIDE - height))
    left = int(np.clip(round(centre - col_mass), 0, MNIST_SIDE - width))
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE))  # [28, 28]
    canvas[top : top + height, left : left + width] = boxed
    return canvas / canvas.max(), inverted


def prepare_plain(gray: np.ndarray, side: int | tuple[int, int]) -> np.ndarray:
    """Grayscale resized to [H, W] (``side``: H = W, or (H, W); unchanged at that size already), scaled to [0, 1]."""
    height, width = (side, side) if isinstance(side, int) else side
    resized = gray if gray.shape == (height, width) else _resize(gray, height, width)
    low, high = resized.min(), resized.max()
    return (resized - low) / (high - low) if high > low else np.zeros_like(resized)


def square_side(n_inputs: int) -> int:
    side = int(round(np.sqrt(n_inputs)))
    if side * side != n_inputs:
        raise InputFileError(f"the model takes {n_inputs} inputs, not a square image: give an [N, {n_inputs}] array")
    return side


PREPARATIONS = ("plain", "mnist", "patches")


@dataclass(frozen=True)
class InputPreparation:
    """How an image becomes a model's input; it travels with the run (config.json) and the export (HDF5 metadata).

    shape: (H, W) of one input. mode: "plain" (grayscale, scaled to [0, 1], resized to (H, W) only if it is
    another size), "mnist" (prepare_digit, 28 x 28) or "patches" (Olshausen-Field whitening of the whole image,
    ipvae.data.natural.whiten_image, cut into H x H tiles, each tile's mean removed, divided by ``patch_std``,
    the global std measured on the training patches).
    """

    shape: tuple[int, int]
    mode: str = "plain"
    patch_std: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise InputFileError(f"an input shape is (height, width) with positive sides, got {self.shape}")
        if self.mode not in PREPARATIONS:
            raise InputFileError(f"unknown preparation {self.mode!r}; expected one of {', '.join(PREPARATIONS)}")
        if self.mode == "mnist" and self.shape != (MNIST_SIDE, MNIST_SIDE):
            raise InputFileError(f"the MNIST preparation makes {MNIST_SIDE}x{MNIST_SIDE} inputs, not {self.shape}")
        if self.mode == "patches" and (self.shape[0] != self.shape[1] or not (self.patch_std or 0) > 0):
            raise InputFileError("the patch preparation needs square patches and a positive patch_std")

    @property
    def n_inputs(self) -> int:
        return self.shape[0] * self.shape[1]

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "mode": self.mode, "patch_std": self.patch_std}

    @classmethod
    def from_dict(cls, values: dict) -> "InputPreparation":
        if not isinstance(values, dict) or set(values) - {"shape", "mode", "patch_std"} or "shape" not in values:
            raise InputFileError(f"an input preparation is an object with shape, mode and patch_std, got {values!r:.80}")
        shape = values["shape"]
        if not isinstance(shape, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            raise InputFileError(f"an input preparation's shape is two integers, got {shape!r:.40}")
        std = values.get("patch_std")
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float)) or not np.isfinite(std)):
            raise InputFileError(f"an input preparation's patch_std is a finite number, got {std!r:.40}")
        return cls(shape=tuple(shape), mode=values.get("mode", "plain"), patch_std=None if std is None else float(std))

    def words(self) -> str:
        height, width = self.shape
        if self.mode == "mnist":
            return (f"MNIST-style: grayscale, inverted if the background is light, cropped to content, fit in "
                    f"{MNIST_BOX}x{MNIST_BOX} keeping aspect, centred by centre of mass in {MNIST_SIDE}x{MNIST_SIDE}, "
                    f"scaled to [0, 1]")
        if self.mode == "patches":
            return (f"whitened (Olshausen-Field), cut into {height}x{width} patches, each patch's mean removed, "
                    f"divided by the training patches' std {self.patch_std:.4g}")
        return f"grayscale, {height}x{width} (resized if another size), scaled to [0, 1]"


def default_preparation(n_inputs: int) -> InputPreparation:
    """What a model saved without a preparation gets: MNIST-style at 28 x 28, plain at any other square size."""
    side = square_side(n_inputs)
    return InputPreparation((side, side), "mnist" if side == MNIST_SIDE else "plain")


def prepare_image(gray: np.ndarray, preparation: InputPreparation, source: str = "image") -> np.ndarray:
    """The model inputs [n, M] of one grayscale image [H', W'] in [0, 1]: one row, or its patches' rows."""
    if preparation.mode == "mnist":
        return prepare_digit(gray, source)[0].reshape(1, -1)  # [1, 784]
    if preparation.mode == "plain":
        return prepare_plain(gray, preparation.shape).reshape(1, -1)  # [1, M]
    from ipvae.data.natural import whitened_tiles

    return whitened_tiles(gray, preparation.shape[0], preparation.patch_std, source)  # [n, P*P]


def load_images(paths: list[Path], n_inputs: int, preparation: InputPreparation | None = None) -> LoadedInputs:
    """Images prepared for a model with ``n_inputs`` pixels: by ``preparation`` (a run's own, saved with it),
    or when it has none, MNIST-style at 28 x 28 and plain at any other square size."""
    if preparation is None:
        return _load_images_by_size(paths, n_inputs)
    if preparation.n_inputs != n_inputs:
        raise InputFileError(f"the preparation makes {preparation.shape} inputs, the model takes {n_inputs}")
    read = [read_image(path) for path in paths]
    rows = [prepare_image(gray, preparation, str(path)) for path, (gray, _) in zip(paths, read)]
    coloured = sum(colour for _, colour in read)
    names = tuple(str(path) for path, block in zip(paths, rows) for _ in range(block.shape[0]))
    x = np.concatenate(rows)  # [N, M]
    converted = f", {coloured} colour image(s) converted to grey" if coloured else ""
    return LoadedInputs(x=x, names=names, description=(
        f"{len(paths)} image(s) from {_where(paths)} -> {x.shape[0]} input(s) of {preparation.shape[0]}x"
        f"{preparation.shape[1]}: {preparation.words()}{converted}"))


def _load_images_by_size(paths: list[Path], n_inputs: int) -> LoadedInputs:
    side = square_side(n_inputs)
    if side == MNIST_SIDE:
        prepared = [prepare_digit(read_grayscale(path), str(path)) for path in paths]
        x = np.stack([digit.reshape(-1) for digit, _ in prepared])  # [N, 784]
        inverted = sum(flag for _, flag in prepared)
        what = (f"MNIST-style: grayscale, {inverted} of {len(paths)} inverted (light background), cropped to content, "
                f"fit in {MNIST_BOX}x{MNIST_BOX} keeping aspect, centred by centre of mass in "
                f"{MNIST_SIDE}x{MNIST_SIDE}, scaled to [0, 1]")
    else:
        x = np.stack([prepare_plain(read_grayscale(path), side).reshape(-1) for path in paths])  # [N, M]
        what = (f"the model's input is {side}x{side}, not MNIST's {MNIST_SIDE}x{MNIST_SIDE}, so no digit-style "
                f"preparation: grayscale, resized to {side}x{side}, scaled to [0, 1] (a natural-patch model was "
                f"trained on whitened patches; results on raw images are not comparable)")
    return LoadedInputs(x=x, description=f"{len(paths)} image(s) from {_where(paths)}: {what}",
                        names=tuple(str(p) for p in paths))


def _where(paths: list[Path]) -> str:
    parents = {p.parent for p in paths}
    return str(paths[0]) if len(paths) == 1 else (f"{parents.pop()}/" if len(parents) == 1 else "several folders")


def load_array_file(path: Path, n_inputs: int) -> LoadedInputs:
    """[N, M], [N, H, W], [N, F, M] or [N, F, H, W] from a .npy or .npz file, as float64 [N, M] / [N, F, M]."""
    array = read_array_file(path)
    shape = array.shape
    if array.ndim == 2 and shape[1] == n_inputs:
        kind = f"{shape[0]} images [N, M]"
        x = array
    elif array.ndim == 3 and shape[1] * shape[2] == n_inputs and shape[2] != n_inputs:
        kind = f"{shape[0]} images [N, H, W] = {list(shape)}"
        x = array.reshape(shape[0], n_inputs)
    elif array.ndim == 3 and shape[2] == n_inputs:
        kind = f"{shape[0]} sequences of {shape[1]} frames [N, F, M] (moving input, one frame per step)"
        x = array
    elif array.ndim == 4 and shape[2] * shape[3] == n_inputs:
        kind = f"{shape[0]} sequences of {shape[1]} frames [N, F, H, W] (moving input, one frame per step)"
        x = array.reshape(shape[0], shape[1], n_inputs)
    elif array.ndim == 2:
        raise InputFileError(f"{path}: images have {shape[1]} pixels, the model expects {n_inputs}")
    else:
        raise InputFileError(
            f"{path}: shape {list(shape)} does not fit a model with {n_inputs} inputs "
            f"(expected [N, {n_inputs}], [N, H, W], [N, F, {n_inputs}] or [N, F, H, W])"
        )
    return LoadedInputs(x=np.asarray(x, dtype=np.float64), description=f"{path}: {kind}, used as stored (no rescaling)")


def read_array_file(path: Path) -> np.ndarray:
    """The numeric array of a .npy file or of a .npz file (its one array, or the one named x, images or frames)."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                array = _pick_npz_array(path, archive)
        else:
            array = np.load(path, allow_pickle=False)
            if not isinstance(array, np.ndarray):  # np.load opens a zip archive whatever the file is named
                array.close()
                raise ValueError("a zip archive, not an .npy array")
    except (OSError, ValueError, EOFError) as error:
        raise InputFileError(f"{path}: not a readable {path.suffix} file ({type(error).__name__})") from None
    if array.dtype.kind not in "fiub":
        raise InputFileError(f"{path}: arrays must be numeric, got dtype {array.dtype}")
    return array


def _pick_npz_array(path: Path, archive) -> np.ndarray:
    names = list(archive.files)
    if len(names) == 1:
        return archive[names[0]]
    for name in NPZ_ARRAY_NAMES:
        if name in names:
            return archive[name]
    raise InputFileError(f"{path} holds arrays {names[:10]}; name the input array one of {NPZ_ARRAY_NAMES}")
