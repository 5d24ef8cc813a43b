"""Reconstruction and sparsity metrics of a spike trajectory, with train/evaluate.py's definitions.

Per step t = 0..T (x_t = the frame that drove step t: frame t-1 of a sequence, the image if static):
    mse_per_pixel[t]  mean over images and pixels of (x_t - Phi z_t)^2
    r2[t]             per-image 1 - sum (x_t - Phi z_t)^2 / sum (x_t - mean x_t)^2, averaged over images
    zeros[t]          fraction of the counts z_t equal to 0
    spikes[t]         sum of the counts z_t, averaged over images
The summary values are those of the last step T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.fidelity import r2_per_image


@dataclass(frozen=True, eq=False)
class StepMetrics:
    """Per-step curves, each float64 [T+1]."""

    mse_per_pixel: np.ndarray
    r2: np.ndarray
    zeros: np.ndarray
    spikes: np.ndarray

    def final(self) -> dict[str, float]:
        return {"mse_per_pixel": float(self.mse_per_pixel[-1]), "r2": float(self.r2[-1]), "zeros": float(self.zeros[-1])}


def step_targets(x: np.ndarray, n_steps: int) -> np.ndarray:
    """The input that drove each step, [T+1, N, M]: x (static [N, M]) or frame max(t-1, 0) of [N, F, M]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return np.broadcast_to(x[None], (n_steps + 1,) + x.shape)
    frame_of_step = np.maximum(np.arange(n_steps + 1) - 1, 0)  # [T+1]
    return x[:, frame_of_step].transpose(1, 0, 2)


def trajectory_metrics(x: np.ndarray, z: np.ndarray, phi: np.ndarray) -> StepMetrics:
    """Metrics of spike counts z [T+1, N, K] decoded with phi [M, K] against images x ([N, M] or [N, F, M])."""
    n_window = z.shape[0]
    targets = step_targets(x, n_window - 1)  # [T+1, N, M]
    phi_t = np.asarray(phi, dtype=np.float64).T  # [K, M]
    curves = {name: np.zeros(n_window) for name in ("mse_per_pixel", "r2", "zeros", "spikes")}
    for t in range(n_window):
        counts = z[t].astype(np.float64)  # [N, K]
        recon = counts @ phi_t  # [N, M]
        curves["mse_per_pixel"][t] = np.square(targets[t] - recon).mean()
        curves["r2"][t] = r2_per_image(targets[t], recon).mean()
        curves["zeros"][t] = (z[t] == 0).mean()
        curves["spikes"][t] = counts.sum(axis=1).mean()
    return StepMetrics(**curves)
