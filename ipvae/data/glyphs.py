"""Glyphs rendered from the Hershey vector fonts: a novel 28x28 data set for models trained on MNIST.

Hershey glyphs (PyPI ``Hershey-Fonts``, public-domain fonts of A. V. Hershey): every character of
:data:`CHARACTERS` in every font of :data:`FONTS` is drawn as strokes on a fine canvas
(RENDER_SCALE x 28 pixels), thickened, and averaged down to 28x28, the glyph fitted into the central
20x20 box like MNIST's digits. Labels are the character's index; the split is by font (train and test
never share a font), so a probe must generalise across type faces.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ipvae.errors import DatasetUnavailable, IpvaeError

SIDE = 28
BOX = 20  # the glyph is fitted into the central BOX x BOX pixels (MNIST's convention)
RENDER_SCALE = 4
STROKE_RADIUS = 4  # in fine pixels: strokes about two output pixels wide, like MNIST
CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FONTS = ("futural", "futuram", "rowmans", "rowmand", "rowmant", "timesr", "timesrb", "timesi", "timesib",
         "scripts", "scriptc", "cursive", "gothiceng", "gothicger", "gothicita")
TEST_FONTS = ("futuram", "rowmant", "timesib", "scriptc", "gothicita")
BYTE_MAX = 255.0
DUPLICATE_TOLERANCE = 1.0 / BYTE_MAX  # two glyphs closer than this in every pixel are the same glyph


def _glyph_strokes(font, character: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    return [tuple(segment) for segment in font.lines_for_text(character)]


def render_glyph(segments, side: int = SIDE) -> np.ndarray:
    """Line segments ((x0, y0), (x1, y1)) -> a [side, side] float image in [0, 1], glyph centred in BOX."""
    from skimage.draw import line
    from skimage.morphology import dilation, disk
    from skimage.transform import downscale_local_mean

    points = np.array([point for segment in segments for point in segment], dtype=np.float64)  # [P, 2]
    low, high = points.min(0), points.max(0)  # [2], [2]
    extent = max(float((high - low).max()), 1e-9)
    fine = side * RENDER_SCALE
    scale = (BOX * RENDER_SCALE - 2 * STROKE_RADIUS) / extent
    offset = fine / 2 - scale * (low + high) / 2  # centre the glyph's box
    canvas = np.zeros((fine, fine), dtype=bool)
    for (x0, y0), (x1, y1) in segments:
        # the package's y grows downwards, as image rows do
        c0, c1 = (int(round(scale * x + offset[0])) for x in (x0, x1))
        r0, r1 = (int(round(scale * y + offset[1])) for y in (y0, y1))
        rows, cols = line(r0, c0, r1, c1)
        canvas[np.clip(rows, 0, fine - 1), np.clip(cols, 0, fine - 1)] = True
    thick = dilation(canvas, disk(STROKE_RADIUS)).astype(np.float64)
    image = downscale_local_mean(thick, (RENDER_SCALE, RENDER_SCALE))  # [side, side]
    return image / max(image.max(), 1e-12)


def hershey_glyphs(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, 784] float32 in [0, 1] and character labels [N] of the fonts of one split ('train' / 'test')."""
    if split not in ("train", "test"):
        raise IpvaeError(f"hershey has no split {split!r}; expected train or test")
    images, labels = _rendered_splits()[split]
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


def _font_glyphs(name: str) -> tuple[np.ndarray, np.ndarray]:
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font(name)
    images, labels = [], []
    for label, character in enumerate(CHARACTERS):
        segments = _glyph_strokes(font, character)
        if segments:
            images.append(render_glyph(segments).reshape(-1))
            labels.append(label)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)


def _unique_rows(images: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Mask [N] of the rows that equal neither a row of ``seen`` nor an earlier row (to 1/255)."""
    keep = np.ones(len(images), dtype=bool)
    for index, image in enumerate(images):
        earlier = np.concatenate([seen, images[:index][keep[:index]]])
        keep[index] = not (len(earlier) and bool((np.abs(earlier - image).max(axis=1) < DUPLICATE_TOLERANCE).any()))
    return keep


@functools.lru_cache(maxsize=1)
def _rendered_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, duplicates removed: several Hershey fonts share glyphs (futuram's are rowmand's, rowmant's
    timesrb's, some digits repeat across script and gothic faces); a glyph seen in train never appears in test."""
    try:
        import HersheyFonts  # noqa: F401
    except ImportError:
        raise DatasetUnavailable("the Hershey glyphs need the package Hershey-Fonts (pip install Hershey-Fonts==2.1.0)") from None
    splits = {}
    seen = np.zeros((0, SIDE * SIDE), dtype=np.float32)
    for split in ("train", "test"):
        fonts = [name for name in FONTS if (name in TEST_FONTS) == (split == "test")]
        rendered = [_font_glyphs(name) for name in fonts]
        images = np.concatenate([images for images, _ in rendered])
        labels = np.concatenate([labels for _, labels in rendered])
        keep = _unique_rows(images, seen)
        splits[split] = (images[keep], labels[keep])
        seen = np.concatenate([seen, images[keep]])
    return splits
