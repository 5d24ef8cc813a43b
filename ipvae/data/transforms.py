"""Rotated images: rotated MNIST (out-of-distribution tests) and rotating sequences (moving inputs).

Rotation uses torch ``affine_grid`` + ``grid_sample`` (bilinear, zero padding, align_corners=False)
about the image centre; positive angles turn the image counter-clockwise as displayed (row 0 on top),
the same sense as ``torch.rot90(image, 1, dims=(0, 1))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
import torch.nn.functional as F

from ipvae.errors import IpvaeError
from ipvae.data.digits import MNIST_SIDE, load_mnist

ROTATION_CHUNK = 8192  # images per grid_sample call: bounds the sampling grid's memory
DEGREES_PER_HALF_TURN = 180.0


def rotate_images(x: Tensor, angle_degrees: float | Tensor, side: int = MNIST_SIDE) -> Tensor:
    """Rotate flattened square images x [N, side*side] by one angle or per-image angles [N] (degrees)."""
    if x.ndim != 2 or x.shape[1] != side * side:
        raise IpvaeError(f"rotate_images expects images [N, {side * side}], got shape {tuple(x.shape)}.")
    n_images = x.shape[0]
    images = x.to(torch.float32).reshape(n_images, 1, side, side)  # [N, 1, H, W]
    angles = torch.as_tensor(angle_degrees, dtype=torch.float64).flatten()  # [N] or [1]
    if angles.numel() == 1:
        angles = angles.expand(n_images)  # [N]
    elif angles.numel() != n_images:
        raise IpvaeError(f"rotate_images got {angles.numel()} angles for {n_images} images.")
    radians = angles * (math.pi / DEGREES_PER_HALF_TURN)  # [N]
    cos, sin = torch.cos(radians), torch.sin(radians)  # [N], [N]
    zeros = torch.zeros_like(cos)  # [N]
    # Output pixel q samples the input at R q (x right, y down): a counter-clockwise turn on screen.
    theta = torch.stack(
        [torch.stack([cos, -sin, zeros], dim=1), torch.stack([sin, cos, zeros], dim=1)], dim=1
    ).to(device=x.device, dtype=torch.float32)  # [N, 2, 3]
    out = torch.empty_like(images)  # [N, 1, H, W]
    for start in range(0, n_images, ROTATION_CHUNK):
        stop = min(start + ROTATION_CHUNK, n_images)
        grid = F.affine_grid(theta[start:stop], [stop - start, 1, side, side], align_corners=False)  # [n, H, W, 2]
        out[start:stop] = F.grid_sample(
            images[start:stop], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [n, 1, H, W]
    return out.reshape(n_images, side * side)  # [N, side*side]


def rotated_mnist(angle_degrees: float | Tensor, split: str = "test", n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first n MNIST images of a split, rotated by angle_degrees (scalar or [n]); labels unchanged."""
    x, y = load_mnist(split)  # [N, 784], [N]
    if n is not None:
        x, y = x[:n], y[:n]  # [n, 784], [n]
    return rotate_images(x, angle_degrees).clamp_(0.0, 1.0), y  # [n, 784], [n]


def rotating_sequence(image: Tensor, n_frames: int, degrees_per_frame: float, side: int = MNIST_SIDE) -> Tensor:
    """Frames [n_frames, side*side] of one image [side*side] turning by degrees_per_frame each frame."""
    if n_frames < 1:
        raise IpvaeError(f"rotating_sequence needs at least one frame, got {n_frames}.")
    flat = image.reshape(1, -1)  # [1, side*side]
    angles = torch.arange(n_frames, dtype=torch.float64) * degrees_per_frame  # [n_frames]
    frames = rotate_images(flat.expand(n_frames, -1), angles, side=side)  # [n_frames, side*side]
    frames[0] = flat[0].to(frames.dtype)  # frame 0 is the image itself, bit for bit
    return frames
