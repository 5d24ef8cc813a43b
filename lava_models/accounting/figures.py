"""PNG figures of a run: inputs vs reconstructions, a spike raster, spikes and energy per step."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ipvae.fileio import save_figure

GRID_IMAGES = 8
RASTER_MAX_NEURONS = 128
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_image(vector: np.ndarray, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """The picture of the given (H, W); without one, a square picture if the length is a square, else a strip."""
    if image_shape is not None and image_shape[0] * image_shape[1] == vector.shape[-1]:
        return vector.reshape(image_shape)
    side = math.isqrt(vector.shape[-1])
    return vector.reshape(side, side) if side * side == vector.shape[-1] else vector.reshape(1, -1)


def reconstruction_grid(path: Path, x_last: np.ndarray, recon_last: np.ndarray, title: str,
                        image_shape: tuple[int, int] | None = None) -> Path:
    """Row 1: the inputs of the last step; row 2: their reconstructions Phi z_T."""
    plt = _pyplot()
    n = min(GRID_IMAGES, x_last.shape[0])
    figure, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for i in range(n):
        for row, (data, label) in enumerate(((x_last[i], "input"), (recon_last[i], "Phi z_T"))):
            axis = axes[row, i]
            axis.imshow(_as_image(data, image_shape), cmap="gray", vmin=0.0, vmax=max(1.0, float(x_last.max())))
            axis.set_xticks([])
            axis.set_yticks([])
            if i == 0:
                axis.set_ylabel(label)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path, DPI)


def spike_raster(path: Path, z_image: np.ndarray, title: str) -> Path:
    """Spike counts of one image, [T+1, K]: the most active neurons (rows) over steps (columns)."""
    plt = _pyplot()
    totals = z_image.sum(axis=0)  # [K]
    active = np.argsort(-totals, kind="stable")[: min(RASTER_MAX_NEURONS, int((totals > 0).sum()) or 1)]
    figure, axis = plt.subplots(figsize=(7.0, 4.0))
    shown = axis.imshow(z_image[:, active].T, aspect="auto", interpolation="nearest", cmap="magma")
    axis.set_xlabel("step t")
    axis.set_ylabel(f"neuron (the {len(active)} most active)")
    figure.colorbar(shown, ax=axis, label="spike count")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path, DPI)


def per_step_plot(path: Path, spikes: np.ndarray, events: np.ndarray, energy_nj: np.ndarray, title: str) -> Path:
    """Spikes and graded events per step (left), estimated energy per step (right)."""
    plt = _pyplot()
    steps = np.arange(spikes.shape[0])
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    left.plot(steps, spikes, label="spikes (sum of counts)")
    left.plot(steps, events, label="graded events (non-zero counts)")
    left.set_xlabel("step t")
    left.set_ylabel("per image")
    left.legend(fontsize=8)
    right.plot(steps, energy_nj, color="tab:red")
    right.set_xlabel("step t")
    right.set_ylabel("energy estimate per image [nJ]")
    right.set_title("estimate (Loihi per-op table)", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path, DPI)
