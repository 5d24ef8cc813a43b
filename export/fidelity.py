"""Reconstruction and spiking metrics shared by the quantization benchmark and parity reports.

Per the paper's protocol: R^2 per image = 1 - SSE / sum_m (x_m - mean(x))^2, averaged over images;
MSE per pixel; fraction of zero counts; spikes per inference = sum over t = 1..T and neurons of z_t.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    r2: float  # mean per-image R^2 of recon_T = Phi z_T
    mse_per_pixel: float  # at step T
    zeros: float  # fraction of z_T == 0
    spikes_per_inference: float  # mean over images of sum_{t=1..T} sum_k z_t
    r2_mean_over_steps: float  # R^2 averaged over t = 1..T

    def as_dict(self) -> dict:
        return asdict(self)


def r2_per_image(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """1 - SSE / SST for each row of x [B, M]; [B]. The numpy definition every deployment-side metric uses
    (ipvae.train.evaluate has the same formula on torch tensors for training)."""
    x = x.astype(np.float64)
    residual = ((x - recon) ** 2).sum(axis=-1)
    total = ((x - x.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return 1.0 - residual / np.maximum(total, np.finfo(np.float64).tiny)


@dataclass
class FidelityAccumulator:
    """Sums over batches; steps t = 1..T of z [T, B, K] and recon [T, B, M] (t = 0 excluded)."""

    n_images: int = 0
    r2_sum: float = 0.0
    r2_steps_sum: float = 0.0
    mse_sum: float = 0.0
    zeros_sum: float = 0.0
    spikes_sum: float = 0.0

    def add(self, x: np.ndarray, z_steps: np.ndarray, recon_steps: np.ndarray) -> None:
        batch = x.shape[0]
        final = recon_steps[-1].astype(np.float64)  # [B, M]
        self.n_images += batch
        self.r2_sum += float(r2_per_image(x, final).sum())
        self.r2_steps_sum += float(np.mean([r2_per_image(x, r).sum() for r in recon_steps]))
        self.mse_sum += float(((x - final) ** 2).mean(axis=-1).sum())
        self.zeros_sum += float((z_steps[-1] == 0).mean(axis=-1).sum())
        self.spikes_sum += float(z_steps.astype(np.int64).sum())

    def result(self) -> Fidelity:
        n = max(self.n_images, 1)
        return Fidelity(
            r2=self.r2_sum / n,
            mse_per_pixel=self.mse_sum / n,
            zeros=self.zeros_sum / n,
            spikes_per_inference=self.spikes_sum / n,
            r2_mean_over_steps=self.r2_steps_sum / n,
        )
