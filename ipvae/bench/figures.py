"""Figure helpers for the experiments: every figure carries the device it ran on and the budget."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ipvae.fileio import atomic_path  # noqa: E402
from train.plots import FIGURE_DPI  # noqa: E402

LABEL_FONT_SIZE = 7


def new_figure(n_panels: int, panel_width: float = 4.0, panel_height: float = 3.2):
    figure, axes = plt.subplots(1, n_panels, figsize=(panel_width * n_panels, panel_height), squeeze=False)
    return figure, list(axes[0])


def save_labelled(figure, path: str | Path, device: str, budget_name: str) -> str:
    """Write the figure (atomically) with a footer naming the device and budget; returns the file name."""
    figure.text(0.0, -0.02, f"device: {device}; budget: {budget_name}", fontsize=LABEL_FONT_SIZE,
                ha="left", va="top", color="dimgray")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(figure)
    return Path(path).name
