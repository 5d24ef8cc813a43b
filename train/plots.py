"""Figures of a trained model: per-step metric curves and the learned dictionary."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ipvae.fileio import save_figure  # noqa: E402

CURVE_METRICS = ("r2", "r2_rate", "zeros", "mse_per_pixel")
DICTIONARY_GRID_MAX = 256
FIGURE_DPI = 120


def _save(figure, path: str | Path) -> None:
    save_figure(figure, path, FIGURE_DPI, tight=True)


def plot_curves(curves: dict[str, np.ndarray], t_train: int, path: str | Path, title: str = "") -> None:
    """Metric vs inference step (log x axis), with T_train marked."""
    figure, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(4 * len(CURVE_METRICS), 3.2))
    steps = curves["step"]
    for axis, name in zip(axes, CURVE_METRICS):
        axis.plot(steps, curves[name], lw=1.5)
        axis.axvline(t_train, color="tab:red", ls="--", lw=1, label=f"T_train = {t_train}")
        axis.set_xscale("log")
        axis.set_xlabel("inference step t")
        axis.set_title(name)
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    figure.suptitle(title, y=1.04)
    _save(figure, path)


def plot_dictionary(phi: np.ndarray, image_shape: tuple[int, int], path: str | Path, usage: np.ndarray | None = None) -> None:
    """Columns of Phi [M, K] as images; the most used first when ``usage`` [K] is given."""
    order = np.argsort(-usage) if usage is not None else np.arange(phi.shape[1])
    atoms = phi[:, order[:DICTIONARY_GRID_MAX]].T  # [n, M]
    side = math.ceil(math.sqrt(atoms.shape[0]))
    figure, axes = plt.subplots(side, side, figsize=(side * 0.6, side * 0.6))
    for index, axis in enumerate(np.ravel(axes)):
        axis.axis("off")
        if index < atoms.shape[0]:
            atom = atoms[index].reshape(image_shape)
            limit = np.abs(atom).max() or 1.0
            axis.imshow(atom, cmap="RdBu_r", vmin=-limit, vmax=limit)
    figure.subplots_adjust(wspace=0.05, hspace=0.05)
    _save(figure, path)
