"""PCA, the dense linear reference of the rate-distortion comparison: R^2 of the projection of test images on
the first k principal components of the training images, for each k (the 'rate' is k active values per image).

    pca_curve(x_train [N, M], x_test [N', M], ks) -> {"k": [...], "r2": [...]}
"""

from __future__ import annotations

import numpy as np

from ipvae.export.fidelity import r2_per_image

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


def pca_curve(x_train: np.ndarray, x_test: np.ndarray, ks=PCA_COMPONENTS) -> dict:
    """R^2 on x_test for each k in ks that the training set supports."""
    mean, axes = principal_axes(x_train)
    kept = [int(k) for k in ks if k <= axes.shape[1]]
    return {"k": kept, "r2": [projection_r2(mean, axes, x_test, k) for k in kept], "train_images": int(len(x_train))}
