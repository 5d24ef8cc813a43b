"""Figure helpers for the experiments: every figure carries the device it ran on and the budget."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ipvae.fileio import save_figure  # noqa: E402
from ipvae.train.plots import FIGURE_DPI  # noqa: E402

LABEL_FONT_SIZE = 7
LABEL_HEIGHT = 1.08  # figure coordinates: above the suptitle (placed at 1.04), clear of any tick labels


def new_figure(n_panels: int, panel_width: float = 4.0, panel_height: float = 3.2):
    figure, axes = plt.subplots(1, n_panels, figsize=(panel_width * n_panels, panel_height), squeeze=False)
    return figure, list(axes[0])


def new_grid(n_panels: int, columns: int, panel_width: float = 3.0, panel_height: float = 3.2):
    """Panels in rows of ``columns``; the unused ones are hidden. Returns (figure, the n_panels axes)."""
    rows = -(-n_panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_width * columns, panel_height * rows), squeeze=False)
    flat = list(axes.ravel())
    for axis in flat[n_panels:]:
        axis.axis("off")
    return figure, flat[:n_panels]


def save_labelled(figure, path: str | Path, device: str, budget_name: str) -> str:
    """Write the figure (atomically) with a line above it naming the device and budget; returns the file name."""
    figure.text(0.0, LABEL_HEIGHT, f"device: {device}; budget: {budget_name}", fontsize=LABEL_FONT_SIZE,
                ha="left", va="bottom", color="dimgray")
    return save_figure(figure, path, FIGURE_DPI, tight=True).name
