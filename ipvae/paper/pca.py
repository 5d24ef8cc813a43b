"""PCA, the dense linear reference of the rate-distortion comparison: R^2 of the projection of test images on
the first k principal components of the training images, for each k (the 'rate' is k active values per image).

    pca_curve(x_train [N, M], x_test [N', M], ks) -> {"k": [...], "r2": [...]}
    pca_rates(x_train, x_test, ks) -> {"bits_per_image": [...], "r2_quantized": [...]}  (ipvae.paper.rate)
"""

from __future__ import annotations

import numpy as np

from ipvae.export.fidelity import r2_per_image
from ipvae.paper.rate import bits_per_image, round_to_grid

PCA_COMPONENTS = (8, 16, 32, 64, 128, 256, 512)  # k at which the curve is measured (at most min(N, M))


def principal_axes(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [M], axes [M, R]) of the training images, the axes ordered by explained variance (R = min(N, M))."""
    x = np.asarray(x_train, dtype=np.float64)
    mean = x.mean(axis=0)  # [M]
    _, _, right = np.linalg.svd(x - mean, full_matrices=False)  # right: [R, M]
    return mean, right.T  # [M], [M, R]


def projection_r2(mean: np.ndarray, axes: np.ndarray, x_test: np.ndarray, k: int) -> float:
    """Mean per-image R^2 of x reconstructed from its first k principal coordinates."""
    x = np.asarray(x_test, dtype=np.float64)
    basis = axes[:, :k]  # [M, k]
    recon = mean + ((x - mean) @ basis) @ basis.T  # [N', M]
    return float(r2_per_image(x, recon).mean())


def principal_coordinates(mean: np.ndarray, axes: np.ndarray, x_test: np.ndarray, k: int) -> np.ndarray:
    """PCA's code of x_test: its first k principal coordinates, [N', k]."""
    return (np.asarray(x_test, dtype=np.float64) - mean) @ axes[:, :k]  # [N', k]


def pca_rates(x_train: np.ndarray, x_test: np.ndarray, ks) -> dict:
    """For each k in ks (as pca_curve keeps them): the bits per image of the k coordinates (each rounded to the
    rate's 2^8-point grid over its range) and the R^2 of the image rebuilt from those rounded coordinates."""
    mean, axes = principal_axes(x_train)
    x = np.asarray(x_test, dtype=np.float64)
    kept = [int(k) for k in ks if k <= axes.shape[1]]
    bits, r2_quantized = [], []
    for k in kept:
        codes = principal_coordinates(mean, axes, x, k)  # [N', k]
        bits.append(bits_per_image(codes))
        r2_quantized.append(float(r2_per_image(x, mean + round_to_grid(codes) @ axes[:, :k].T).mean()))
    return {"k": kept, "bits_per_image": bits, "r2_quantized": r2_quantized}


def pca_curve(x_train: np.ndarray, x_test: np.ndarray, ks=PCA_COMPONENTS) -> dict:
    """R^2 on x_test for each k in ks that the training set supports."""
    mean, axes = principal_axes(x_train)
    kept = [int(k) for k in ks if k <= axes.shape[1]]
    return {"k": kept, "r2": [projection_r2(mean, axes, x_test, k) for k in kept], "train_images": int(len(x_train))}
